"""sensitivity_max / sensitivity_avg: closed forms, argument expansion, batching, bad input."""

from __future__ import annotations

import doctest
import importlib
from typing import Any

import pytest
import torch

from perspicio.attr import IntegratedGradients, Saliency
from perspicio.metrics import default_perturb_func, sensitivity_avg, sensitivity_max
from perspicio.testing import MultiInputModel, ReLUMLP
from tests.helpers import CountingModel

X = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
FNS = [sensitivity_max, sensitivity_avg]


def test_docstring_examples() -> None:
    assert doctest.testmod(importlib.import_module("perspicio.metrics.sensitivity")).failed == 0


@pytest.mark.parametrize("fn", FNS)
def test_constant_explanation_has_zero_sensitivity(fn: Any) -> None:
    result = fn(lambda x: torch.ones_like(x), X, n_perturb_samples=5)
    assert result.shape == (3,)
    assert (result == 0).all()


def test_identity_explanation_closed_form() -> None:
    # e(x) = x and x + d_j with d_j = 0.1 * j (the j-th call): ||d_j|| / ||x|| per example
    calls = iter(range(1, 5))

    def shift(x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * next(calls)

    norms = X.norm(dim=1)
    result = sensitivity_max(
        lambda x: x, X, perturb_func=shift, n_perturb_samples=4, max_examples_per_batch=3
    )
    torch.testing.assert_close(result, 0.4 * 6**0.5 / norms)
    calls = iter(range(1, 5))
    result = sensitivity_avg(
        lambda x: x, X, perturb_func=shift, n_perturb_samples=4, max_examples_per_batch=3
    )
    torch.testing.assert_close(result, 0.25 * (0.1 + 0.2 + 0.3 + 0.4) * 6**0.5 / norms)


def test_zero_explanation_norm_counts_as_one() -> None:
    result = sensitivity_max(
        lambda x: x, torch.zeros(2, 3), perturb_func=lambda x: x + 1.0, n_perturb_samples=2
    )
    torch.testing.assert_close(result, torch.full((2,), 3**0.5))


@pytest.mark.parametrize("norm_ord", ["fro", 1, 3.0, float("inf")])
def test_norm_order(norm_ord: Any) -> None:
    result = sensitivity_max(
        lambda x: x, X, perturb_func=lambda x: x + 0.5, n_perturb_samples=1, norm_ord=norm_ord
    )
    order = 2.0 if norm_ord == "fro" else float(norm_ord)
    expected = torch.linalg.vector_norm(torch.full((3, 6), 0.5), order, dim=1)
    torch.testing.assert_close(result, expected / torch.linalg.vector_norm(X, order, dim=1))


def test_max_is_at_least_the_average() -> None:
    explain = Saliency(ReLUMLP()).attribute
    torch.manual_seed(1)
    high = sensitivity_max(explain, X, perturb_radius=0.5, target=0)
    torch.manual_seed(1)
    mean = sensitivity_avg(explain, X, perturb_radius=0.5, target=0)
    assert (high >= mean - 1e-7).all() and (mean > 0).all()


@pytest.mark.parametrize("fn", FNS)
@pytest.mark.parametrize("mepb", [1, 3, 7, 30])
def test_chunk_invariance_with_a_deterministic_perturbation(fn: Any, mepb: int) -> None:
    explain = IntegratedGradients(ReLUMLP()).attribute
    kw: dict[str, Any] = {
        "perturb_func": lambda x: x + 0.05 * x.cos(),
        "n_perturb_samples": 5,
        "target": [0, 2, 1],
        "baselines": X * 0.1,
        "n_steps": 5,
    }
    torch.testing.assert_close(
        fn(explain, X, max_examples_per_batch=mepb, **kw), fn(explain, X, **kw)
    )


def test_per_example_arguments_are_repeated_for_each_sample() -> None:
    seen: list[dict[str, Any]] = []

    def explain(inputs: Any, **kw: Any) -> Any:
        seen.append(kw)
        return inputs

    scale = torch.tensor([1.0, 2.0, 3.0])
    sensitivity_max(
        explain,
        (X, X[:, :2]),
        n_perturb_samples=4,
        max_examples_per_batch=6,
        target=[0, 1, 2],
        additional_forward_args=(scale, "flag"),
        baselines=(X * 0, torch.zeros(1, 2)),
        feature_mask=torch.arange(6).reshape(1, 6),
    )
    assert seen[0]["target"] == [0, 1, 2]
    assert len(seen) == 3  # the unperturbed call, then 2 chunks of 2 samples
    for kw in seen[1:]:
        assert kw["target"] == [0, 0, 1, 1, 2, 2]
        torch.testing.assert_close(kw["additional_forward_args"][0], scale.repeat_interleave(2))
        assert kw["additional_forward_args"][1] == "flag"
        assert kw["baselines"][0].shape == (6, 6) and kw["baselines"][1].shape == (1, 2)
        assert kw["feature_mask"].shape == (1, 6)


def test_explanation_receives_the_users_form() -> None:
    kinds: list[type] = []

    def explain(inputs: Any) -> Any:
        kinds.append(type(inputs))
        return inputs

    sensitivity_max(explain, X, n_perturb_samples=2)
    sensitivity_max(explain, (X,), n_perturb_samples=2)
    assert kinds == [torch.Tensor, torch.Tensor, tuple, tuple]


def test_perturb_func_gets_the_radius_when_it_takes_two_arguments() -> None:
    radii: list[float] = []

    def perturb(x: torch.Tensor, radius: float) -> torch.Tensor:
        radii.append(radius)
        return x + radius

    sensitivity_max(lambda x: x, X, perturb_func=perturb, perturb_radius=0.3, n_perturb_samples=2)
    assert radii == [0.3]


def test_multi_input_with_a_model() -> None:
    model = MultiInputModel()
    inputs = (torch.randn(2, 4), torch.randn(2, 3))
    torch.manual_seed(0)
    result = sensitivity_max(
        Saliency(model).attribute, inputs, target=1, additional_forward_args=(torch.ones(2),)
    )
    assert result.shape == (2,) and torch.isfinite(result).all()


def test_same_seed_same_result() -> None:
    explain = Saliency(ReLUMLP()).attribute
    runs = []
    for _ in range(2):
        torch.manual_seed(4)
        runs.append(sensitivity_avg(explain, X, target=1, max_examples_per_batch=4))
    torch.testing.assert_close(runs[0], runs[1], atol=0, rtol=0)


def test_default_perturb_func_stays_in_the_ball() -> None:
    torch.manual_seed(0)
    a, b = default_perturb_func((torch.zeros(50, 4), torch.ones(3, 2, dtype=torch.float64)), 0.2)
    assert a.abs().max() <= 0.2 and a.abs().max() > 0.15
    assert b.dtype == torch.float64 and (b - 1).abs().max() <= 0.2


BAD = [
    ({"n_perturb_samples": 0}, ValueError, "n_perturb_samples must be at least 1, got 0"),
    ({"n_perturb_samples": "5"}, TypeError, "n_perturb_samples must be an int"),
    ({"norm_ord": "nuc"}, ValueError, "norm_ord must be 'fro' or a number"),
    ({"max_examples_per_batch": -1}, ValueError, "max_examples_per_batch must be at least 1"),
]


@pytest.mark.parametrize("fn", FNS)
@pytest.mark.parametrize(("override", "error", "message"), BAD)
def test_bad_input_is_rejected_before_any_call(
    fn: Any, override: dict[str, Any], error: type, message: str
) -> None:
    model = CountingModel(ReLUMLP())
    with pytest.raises(error, match=message):
        fn(Saliency(model).attribute, X, target=0, **override)
    assert model.calls == 0


def test_inputs_with_different_batch_sizes() -> None:
    with pytest.raises(ValueError, match="same batch size"):
        sensitivity_max(lambda x: x, (torch.ones(2, 3), torch.ones(3, 3)))


@pytest.mark.parametrize("radius", [-0.1, float("nan")])
def test_negative_perturb_radius_is_refused_first(radius: float) -> None:
    model = CountingModel(ReLUMLP())
    with pytest.raises(ValueError, match="perturb_radius must be non-negative"):
        sensitivity_max(Saliency(model).attribute, torch.randn(3, 6), perturb_radius=radius)
    assert model.calls == 0


def test_explanations_for_the_whole_batch_are_refused() -> None:
    from perspicio.attr import FeatureAblation

    mlp = ReLUMLP()
    total = FeatureAblation(lambda x: mlp(x).sum())  # one value, so one explanation, per batch
    with pytest.raises(ValueError, match=r"returned shape \(1, 6\) for 3 examples"):
        sensitivity_max(total.attribute, torch.randn(3, 6))


@pytest.mark.parametrize(
    ("perturb", "shape"),
    [(lambda x, r: x[:, :5], r"\(30, 5\)"), (lambda x, r: x[:2], r"\(2, 6\)")],
)
def test_perturb_func_of_the_wrong_shape_is_named(perturb: Any, shape: str) -> None:
    with pytest.raises(ValueError, match=rf"perturbed inputs\[0\] of shape {shape} for inputs"):
        sensitivity_max(Saliency(ReLUMLP()).attribute, torch.randn(3, 6), perturb, target=0)
