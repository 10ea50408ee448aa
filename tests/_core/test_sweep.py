from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from perspicio._core import sweep as sw
from perspicio._core.call import build_call
from perspicio._core.sweep import (
    AUTO,
    check_per_eval,
    layer_evaluator,
    model_evaluator,
    perturbed,
    sweep,
    sweep_future,
)
from perspicio.testing import ReLUMLP
from tests.helpers import CountingModel


class AddPlan:
    """Perturbation ``j`` adds ``j + 1`` to every input; the fold records each output row."""

    def __init__(self, values: tuple[Tensor, ...], total: int) -> None:
        self.values, self.total = values, total
        self.seen: dict[int, Tensor] = {}
        self.ranges: list[tuple[int, int]] = []

    def perturb(self, start: int, stop: int) -> tuple[Tensor, ...]:
        shift = torch.arange(start, stop, dtype=torch.float32) + 1
        x = self.values[0]
        return ((x.unsqueeze(0) + shift.reshape(-1, 1, 1)).reshape(-1, x.shape[1]),)

    def fold(self, start: int, stop: int, evals: Tensor, base: Tensor) -> None:
        assert not torch.is_grad_enabled()
        self.ranges.append((start, stop))
        for j in range(start, stop):
            self.seen[j] = evals[j - start] - base


def reference(model: nn.Module, x: Tensor, total: int) -> dict[int, Tensor]:
    with torch.no_grad():
        base = model(x)[:, 1]
        return {j: model(x + j + 1)[:, 1] - base for j in range(total)}


@pytest.mark.parametrize(
    "per_eval", [AUTO, None, 1, 3, 7, 100], ids=["auto", "none", "1", "3", "7", "100"]
)
def test_every_chunk_size_gives_the_same_folds(per_eval: Any) -> None:
    model = CountingModel(ReLUMLP())
    x = torch.randn(4, 6)
    call = build_call(x, target=1)
    plan = AddPlan(call.inputs, 7)
    base = sweep(model_evaluator(model, call), call.inputs, plan, per_eval)
    ref = reference(model.model, x, 7)
    assert base.shape == (4,)
    for j in range(7):
        torch.testing.assert_close(plan.seen[j], ref[j], atol=1e-5, rtol=1e-5)
    step = 7 if sw.is_auto(per_eval) or per_eval == 100 else per_eval
    assert model.calls == 1 + -(-7 // step)  # the unperturbed input is evaluated once


def test_auto_chunks_follow_the_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    model = ReLUMLP()
    x = torch.randn(4, 6)
    call = build_call(x, target=0)
    monkeypatch.setattr(sw, "BUDGET_BYTES", 1)  # nothing fits: one perturbation per pass
    plan = AddPlan(call.inputs, 5)
    sweep(model_evaluator(model, call), call.inputs, plan)
    assert plan.ranges == [(j, j + 1) for j in range(5)]


def test_auto_chunks_of_cheap_rows_stay_cache_sized_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = CountingModel(ReLUMLP())
    x = torch.randn(4, 6)
    call = build_call(x, target=0)
    plan = AddPlan(call.inputs, 100)
    sweep(model_evaluator(model, call), call.inputs, plan)
    assert plan.ranges == [(0, 100)]  # 400 rows of a few hundred bytes: one pass
    monkeypatch.setattr(sw, "CPU_CACHE_BYTES", 1)  # at least CPU_MIN_ROWS rows per pass
    monkeypatch.setattr(sw, "CPU_MIN_ROWS", 40)
    plan = AddPlan(call.inputs, 25)
    sweep(model_evaluator(model, call), call.inputs, plan)
    assert plan.ranges == [(0, 10), (10, 20), (20, 25)]
    monkeypatch.setattr(sw, "CPU_CACHE_BYTES", 2**30)  # the memory budget still applies
    monkeypatch.setattr(sw, "BUDGET_BYTES", 1)
    plan = AddPlan(call.inputs, 3)
    sweep(model_evaluator(model, call), call.inputs, plan)
    assert plan.ranges == [(0, 1), (1, 2), (2, 3)]


def test_a_batch_level_output_falls_back_to_one_per_pass() -> None:
    model = ReLUMLP()
    x = torch.randn(4, 6)
    call = build_call(x)
    plan = AddPlan(call.inputs, 4)
    base = sweep(model_evaluator(lambda t: model(t)[:, 1].sum(), call), call.inputs, plan)
    assert base.dim() == 0 and plan.ranges == [(j, j + 1) for j in range(4)]
    with pytest.raises(ValueError, match="perturbations_per_eval=3 needs .* one row per example"):
        sweep(model_evaluator(lambda t: model(t).sum(), call), call.inputs, AddPlan(x, 4), 3)


def test_an_aggregating_model_that_looks_per_example_is_re_evaluated() -> None:
    # one example, output (1,): indistinguishable from a per-example output until stacked
    model = ReLUMLP()
    x = torch.randn(1, 6)
    call = build_call(x)
    agg = lambda t: model(t)[:, 1].sum().reshape(1)  # noqa: E731
    plan = AddPlan(call.inputs, 5)
    sweep(model_evaluator(agg, call), call.inputs, plan)
    ref = reference(model, x, 5)
    for j in range(5):
        torch.testing.assert_close(plan.seen[j], ref[j], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="must grow with the batch"):
        sweep(model_evaluator(agg, call), call.inputs, AddPlan(call.inputs, 5), 2)


def test_multi_output_rows_are_split_per_perturbation() -> None:
    model = ReLUMLP()
    x = torch.randn(3, 6)
    call = build_call(x)  # no target: the whole (N, 3) output is explained
    plan = AddPlan(call.inputs, 4)
    base = sweep(model_evaluator(model, call), call.inputs, plan, 3)
    assert base.shape == (3, 3)
    with torch.no_grad():
        for j in range(4):
            torch.testing.assert_close(plan.seen[j], (model(x + j + 1) - model(x)).reshape(-1))


def test_futures_are_launched_then_folded_in_order() -> None:
    model = ReLUMLP()
    x = torch.randn(2, 6)

    def remote(t: Tensor) -> torch.futures.Future[Tensor]:
        fut: torch.futures.Future[Tensor] = torch.futures.Future()
        fut.set_result(model(t))
        return fut

    call = build_call(x, target=1)
    plan = AddPlan(call.inputs, 5)
    fut = sweep_future(model_evaluator(remote, call), call.inputs, plan, 2)
    assert isinstance(fut, torch._C.Future)
    base = fut.wait()
    assert base.shape == (2,) and plan.ranges == [(0, 2), (2, 4), (4, 5)]
    ref = reference(model, x, 5)
    for j in range(5):
        torch.testing.assert_close(plan.seen[j], ref[j], atol=1e-5, rtol=1e-5)


def test_futures_and_plain_outputs_are_not_mixed_up() -> None:
    model = ReLUMLP()
    x = torch.randn(2, 6)
    call = build_call(x, target=0)
    with pytest.raises(TypeError, match="needs a forward_func that returns a torch.futures"):
        sweep_future(model_evaluator(model, call), call.inputs, AddPlan(call.inputs, 2))

    def remote(t: Tensor) -> torch.futures.Future[Tensor]:
        fut: torch.futures.Future[Tensor] = torch.futures.Future()
        fut.set_result(model(t))
        return fut

    with pytest.raises(TypeError, match="call attribute_future instead"):
        sweep(model_evaluator(remote, call), call.inputs, AddPlan(call.inputs, 2))


def test_layer_evaluator_perturbs_the_layer_values() -> None:
    model = ReLUMLP()
    x = torch.randn(3, 6)
    call = build_call(x, target=2)
    with torch.no_grad():
        hidden = model.relu1(model.fc1(x))
        evaluate = layer_evaluator(model, call, model.relu1)
        stacked = torch.cat([hidden, hidden * 0])
        out = evaluate((stacked,), 2)
        expected = model.fc3(model.relu2(model.fc2(stacked)))[:, 2]
    torch.testing.assert_close(out, expected)
    assert not model.relu1._forward_hooks


def test_perturbed_stacks_copies_and_keeps_integer_inputs_integer() -> None:
    x = torch.arange(6).reshape(2, 3)
    sel = torch.tensor([[[True, False, False]], [[False, False, True]]])  # (k=2, 1, 3)
    (out,) = perturbed((x,), [sel], [torch.tensor(-1)])
    assert out.dtype == torch.long
    assert out.tolist() == [[-1, 1, 2], [-1, 4, 5], [0, 1, -1], [3, 4, -1]]
    # a floating-point replacement makes the perturbed inputs floats (as in Captum)
    (out,) = perturbed((x,), [sel], [torch.tensor(-0.5)])
    assert out.dtype == torch.float32
    assert out.tolist() == [[-0.5, 1, 2], [-0.5, 4, 5], [0, 1, -0.5], [3, 4, -0.5]]


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_check_per_eval_rejects_bad_values(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError), match="perturbations_per_eval"):
        check_per_eval(bad)


def test_auto_is_the_int_one_told_apart_by_identity() -> None:
    assert AUTO == 1 and repr(AUTO) == "1" and sw.is_auto(AUTO) and not sw.is_auto(1)


def test_progress_bar_describes_the_work(capsys: pytest.CaptureFixture[str]) -> None:
    model = ReLUMLP()
    x = torch.randn(2, 6)
    call = build_call(x, target=0)
    sweep(model_evaluator(model, call), call.inputs, AddPlan(call.inputs, 4), 2,
          show_progress=True, desc="Test Method")  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("\rTest Method attribution: ") and "5/5" in err  # 4 + unperturbed


def test_the_activation_meter_leaves_no_global_hook_even_after_an_error() -> None:
    hooks = torch.nn.modules.module._global_forward_hooks
    before = len(hooks)

    def broken(x: Tensor) -> Tensor:
        raise RuntimeError("model failure")

    call = build_call(torch.randn(2, 6))
    with pytest.raises(RuntimeError, match="model failure"):
        sweep(model_evaluator(broken, call), call.inputs, AddPlan(call.inputs, 3))
    assert len(hooks) == before


def test_a_plan_without_perturbations_only_evaluates_the_input() -> None:
    model = CountingModel(ReLUMLP())
    call = build_call(torch.randn(2, 6), target=0)
    plan = AddPlan(call.inputs, 0)
    base = sweep(model_evaluator(model, call), call.inputs, plan)
    assert model.calls == 1 and base.shape == (2,) and plan.ranges == []


def test_an_output_that_changes_size_is_reported() -> None:
    model = ReLUMLP()
    x = torch.randn(2, 6)
    calls = [0]

    def shrinking(t: Tensor) -> Tensor:
        calls[0] += 1
        return model(t)[:, 0] if calls[0] == 1 else model(t)[:1, 0]

    call = build_call(x)
    with pytest.raises(ValueError, match=r"shape \(1,\) for a perturbed batch but \(2,\)"):
        sweep(model_evaluator(shrinking, call), call.inputs, AddPlan(call.inputs, 3), 1)


def test_future_of_derives_attribute_future_from_attribute() -> None:
    class Method:
        def attribute(self, inputs: int, scale: int = 2, *, flag: bool = False) -> Any:
            """Doc."""
            if inputs < 0:
                raise RuntimeError("bad")
            return (inputs * scale, sw.wants_future())

        attribute_future = sw.future_of(attribute)

    m = Method()
    assert m.attribute(3) == (6, False)
    assert m.attribute_future(3, scale=3) == (9, True)
    assert sw.wants_future() is False
    with pytest.raises(RuntimeError):
        m.attribute_future(-1)
    assert sw.wants_future() is False  # reset after an exception too
    sig = inspect.signature(Method.attribute_future)
    assert sig == inspect.signature(Method.attribute)
    assert Method.attribute_future.__name__ == "attribute_future"


def _public_classes() -> list[type]:
    import perspicio.attr as public

    return [
        c
        for c in vars(public).values()
        if isinstance(c, type) and issubclass(c, public.Attribution)
    ]


@pytest.mark.parametrize("cls", _public_classes(), ids=lambda c: c.__name__)
def test_every_attribute_future_runs_its_own_classs_attribute(cls: type) -> None:
    """A derived attribute_future is bound to one attribute: a subclass that overrides
    attribute must derive its own (ShapleyValues keeps Captum's, its parent's signature)."""
    future = getattr(cls, "attribute_future", None)
    wrapped = getattr(future, "__wrapped__", None)
    if wrapped is None:
        with pytest.raises(NotImplementedError, match="attribute_future is not implemented for"):
            cls.__new__(cls).attribute_future(torch.zeros(1, 2), target=0)
        return
    if cls.__name__ == "ShapleyValues":
        assert wrapped is cls.__mro__[1].attribute  # ShapleyValueSampling's
    else:
        assert wrapped is cls.attribute
