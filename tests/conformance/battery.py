"""The conformance battery: one list of cases every attribution class goes through.

Each family adds its cases in a ``cases_<family>.py`` module next to this one (a module-level
``CASES`` list); ``test_battery.py`` collects them all and checks, for every case:

- output form and shape (a tensor in gives a tensor out, a tuple in gives a tuple out);
- batch invariance (a batch equals its examples one at a time);
- chunk invariance (each value of the batching knob gives the same result);
- no residue after success and after a forced exception (hooks, ``requires_grad``,
  parameters, buffers and train/eval mode unchanged; the inputs untouched);
- determinism under a seed;
- on a GPU (skipped without one; ``PERSPICIO_TEST_DEVICE=cpu`` runs it on the CPU): the
  results on the inputs' device, with the CPU's numbers for deterministic methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class Case:
    """One attribution class on one model and input.

    Attributes:
        name: test id.
        build: ``() -> (model, attribution object)``; called fresh for every check.
        inputs: ``() -> tensor or tuple``; seeded, called fresh for every check.
        kwargs: arguments of ``attribute`` after the inputs. Per-example values (tensors or
            lists whose length is the batch size) are sliced for the batch-invariance check.
        chunk_arg: the batching knob, checked at each of ``chunk_values``.
        output: ``"inputs"`` when attributions have the inputs' shapes; otherwise a callable
            ``(model, inputs) -> expected shapes`` (a tuple of torch.Size), or ``None``.
        batch_invariant: whether a batch equals its examples one at a time.
        random: whether the method draws random numbers (seeded before every call).
        atol: tolerance for the invariance checks.
    """

    name: str
    build: Callable[[], tuple[nn.Module, Any]]
    inputs: Callable[[], Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    chunk_arg: str | None = None
    chunk_values: tuple[Any, ...] = (None, 1, 3)
    output: Any = "inputs"
    batch_invariant: bool = True
    random: bool = False
    atol: float = 1e-5


def run(case: Case, model_and_method: tuple[nn.Module, Any] | None = None, **overrides: Any) -> Any:
    """Call ``attribute`` for ``case`` (seeded), with optional extra/overriding kwargs."""
    _, method = model_and_method or case.build()
    torch.manual_seed(1234)
    kwargs = {**case.kwargs, **overrides}
    return method.attribute(case.inputs(), **kwargs)


def flatten(result: Any) -> list[Tensor]:
    """Every tensor in a (nested) result, in order."""
    if isinstance(result, Tensor):
        return [result]
    if isinstance(result, tuple | list):
        return [t for item in result for t in flatten(item)]
    return []


def slice_example(value: Any, i: int, n: int) -> Any:
    """The ``i``-th example's share of a per-example argument."""
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n:
        return value[i : i + 1]
    if isinstance(value, list) and len(value) == n:
        return [value[i]]
    if isinstance(value, tuple):
        return tuple(slice_example(v, i, n) for v in value)
    return value


def snapshot(model: nn.Module) -> dict[str, Any]:
    """Everything an attribution call must leave as it was."""
    state: dict[str, Any] = {"training": [m.training for m in model.modules()]}
    state["hooks"] = [
        (
            len(m._forward_hooks),
            len(m._forward_pre_hooks),
            len(m._backward_hooks),
            len(getattr(m, "_backward_pre_hooks", {})),
            sorted(k for k in vars(m) if not k.startswith("_") and k != "training"),
        )
        for m in model.modules()
    ]
    state["params"] = [
        (n, p.detach().clone(), p.requires_grad, p.grad) for n, p in model.named_parameters()
    ]
    state["buffers"] = [(n, b.detach().clone()) for n, b in model.named_buffers()]
    return state


def assert_same_state(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before["training"] == after["training"], "train/eval mode changed"
    assert before["hooks"] == after["hooks"], "hooks or attributes left on the model"
    for (n, p, rg, g), (_, p2, rg2, g2) in zip(before["params"], after["params"]):
        assert torch.equal(p, p2), f"parameter {n} changed"
        assert rg == rg2, f"requires_grad of {n} changed"
        assert (g is None) == (g2 is None), f".grad of {n} changed"
    for (n, b), (_, b2) in zip(before["buffers"], after["buffers"]):
        assert torch.equal(b, b2), f"buffer {n} changed"


def last_leaf(model: nn.Module) -> nn.Module:
    """The last leaf module registered, where a forced exception is raised."""
    leaves = [m for m in model.modules() if not list(m.children())]
    return leaves[-1] if leaves else model
