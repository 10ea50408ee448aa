"""Hooks as context managers: everything is undone in ``finally``, nothing stays on the model.

Two building blocks serve every Layer and Neuron method:

- :func:`capture` records what a module returns (or receives) during a forward pass;
- :func:`replace` substitutes a module's output (or input) with given values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from perspicio._core.call import Tensors


@contextmanager
def handles(*hs: RemovableHandle) -> Iterator[None]:
    """Remove the given hook handles on exit, whatever happens."""
    try:
        yield
    finally:
        for h in hs:
            h.remove()


def check_layer(model: Any, layer: nn.Module, name: str = "layer") -> None:
    """A clear error for a layer that is not a module, or not part of ``model``."""
    if not isinstance(layer, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(layer).__name__}")
    if isinstance(model, nn.Module) and not any(m is layer for m in model.modules()):
        raise ValueError(
            f"{name} {type(layer).__name__} is not a submodule of the model "
            f"{type(model).__name__}; pass a module taken from the model itself"
        )


def _as_tuple(value: Any) -> tuple[Tensors, bool]:
    if isinstance(value, Tensor):
        return (value,), False
    if isinstance(value, tuple | list) and all(isinstance(v, Tensor) for v in value):
        return tuple(value), True
    raise TypeError(
        f"layer values must be tensors or tuples of tensors, got {type(value).__name__}"
    )


@dataclass
class Captured:
    """What :func:`capture` recorded: the last call of each module wins."""

    values: dict[nn.Module, Tensors] = field(default_factory=dict)
    is_tuple: dict[nn.Module, bool] = field(default_factory=dict)
    calls: dict[nn.Module, int] = field(default_factory=dict)

    def __getitem__(self, layer: nn.Module) -> Tensors:
        if layer not in self.values:
            raise ValueError(
                f"layer {type(layer).__name__} was not called during the forward pass; "
                "is it part of the model's computation?"
            )
        return self.values[layer]


@contextmanager
def capture(
    layers: Sequence[nn.Module], inputs: bool = False, leaf: bool = False
) -> Iterator[Captured]:
    """Record each layer's output (or positional inputs) during the forward passes run inside.

    With ``leaf=True`` the recorded tensors are fresh leaves that require grad and the model
    continues from them, so gradients with respect to the layer are always available and the
    graph before the layer is not kept. Otherwise the recorded tensors stay in the graph.
    Either way the model receives a copy, so in-place operations downstream cannot change
    what was recorded.
    """
    record = Captured()

    def store(layer: nn.Module, value: Any) -> Any:
        tensors, is_tuple = _as_tuple(value)
        if leaf:
            tensors = tuple(t.detach().requires_grad_(t.is_floating_point()) for t in tensors)
        record.values[layer] = tensors
        record.is_tuple[layer] = is_tuple
        record.calls[layer] = record.calls.get(layer, 0) + 1
        copies = tuple(t.clone() for t in tensors)
        return copies if is_tuple else copies[0]

    def make_hook(layer: nn.Module) -> RemovableHandle:
        if inputs:
            return layer.register_forward_pre_hook(lambda m, a: _pre_store(store, m, a))
        return layer.register_forward_hook(lambda m, a, out: store(m, out))

    with ExitStack() as stack:
        for layer in layers:
            stack.enter_context(handles(make_hook(layer)))
        yield record


def _pre_store(store: Callable[[nn.Module, Any], Any], module: nn.Module, args: tuple) -> Any:
    tensors = tuple(a for a in args if isinstance(a, Tensor))
    if len(tensors) != len(args):
        return None  # non-tensor positional args: record nothing replaceable
    new = store(module, tensors)
    return new if isinstance(new, tuple) else (new,)


@contextmanager
def replace(
    layer: nn.Module,
    values: Tensors | Callable[[Tensors], Tensors],
    inputs: bool = False,
) -> Iterator[Captured]:
    """Make ``layer`` return ``values`` (or receive them as its positional inputs).

    ``values`` may be a callable that maps the layer's real output (as a tuple) to the
    replacement, e.g. to add noise to an embedding. The replacement tensors are recorded in the
    yielded :class:`Captured` so gradients can be taken with respect to them.
    """
    record = Captured()

    def substitute(value: Any) -> Any:
        tensors, is_tuple = _as_tuple(value)
        new = values(tensors) if callable(values) else values
        if len(new) != len(tensors):
            raise ValueError(
                f"replacement for layer {type(layer).__name__} has {len(new)} tensors, the "
                f"layer has {len(tensors)}"
            )
        record.values[layer] = tuple(new)
        record.is_tuple[layer] = is_tuple
        record.calls[layer] = record.calls.get(layer, 0) + 1
        copies = tuple(t.clone() for t in new)  # in-place ops downstream must not hit leaves
        return copies if is_tuple else copies[0]

    if inputs:
        h = layer.register_forward_pre_hook(lambda m, a: tuple(_list(substitute(tuple(a)))))
    else:
        h = layer.register_forward_hook(lambda m, a, out: substitute(out))
    with handles(h):
        yield record


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, tuple) else [value]


def leaves(inputs: Tensors) -> Tensors:
    """Detached copies of ``inputs`` that require grad; the user's tensors are never touched."""
    return tuple(x.detach().requires_grad_(x.is_floating_point()) for x in inputs)


def grad(outputs: Tensor, inputs: Tensors, grad_kwargs: dict[str, Any] | None = None) -> Tensors:
    """Gradients of ``outputs.sum()`` w.r.t. ``inputs``; zeros where an input is unused."""
    kwargs = dict(grad_kwargs or {})
    kwargs.setdefault("allow_unused", True)
    gs = torch.autograd.grad(outputs.sum(), inputs, **kwargs)
    return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(gs, inputs))
