from __future__ import annotations

import pytest
import torch

from perspicio.attr import GradientShap
from perspicio.testing import BasicLinearModel, ReLUMLP
from tests.helpers import CountingModel


def test_single_baseline_on_linear_model_is_exact() -> None:
    model = BasicLinearModel()
    x, b = torch.randn(3, 4), torch.randn(1, 4)
    attr, delta = GradientShap(model).attribute(
        x, b, n_samples=7, target=1, return_convergence_delta=True
    )
    torch.testing.assert_close(attr, model.linear.weight[1] * (x - b))
    assert delta.shape == (21,)
    assert delta.abs().max() < 1e-5


def test_expectation_over_baselines_on_linear_model() -> None:
    torch.manual_seed(0)
    model = BasicLinearModel()
    x, dist = torch.randn(2, 4), torch.randn(6, 4)
    attr = GradientShap(model).attribute(x, dist, n_samples=4000, target=0)
    expected = model.linear.weight[0] * (x - dist.mean(0))
    torch.testing.assert_close(attr, expected, atol=0.05, rtol=0.05)


def test_local_attribution_and_noise() -> None:
    model = BasicLinearModel()
    x = torch.randn(2, 4)
    attr = GradientShap(model, multiply_by_inputs=False).attribute(
        x, torch.zeros(3, 4), stdevs=0.5, target=2
    )
    torch.testing.assert_close(attr, model.linear.weight[2].expand(2, -1))


@pytest.mark.parametrize("n_samples", [1, 3])
def test_completeness_per_sample_on_relu_mlp(n_samples: int) -> None:
    """Each sample's delta is ``Σ attribution_j − (f(x) − f(b))``, so without noise and with
    one baseline, the mean delta of an example is its attributions' sum minus ``f(x) − f(b)``."""
    torch.manual_seed(0)
    model = ReLUMLP()
    x, b = torch.randn(2, 6), torch.randn(1, 6)
    attr, delta = GradientShap(model).attribute(
        x, b, n_samples=n_samples, stdevs=0.0, target=0, return_convergence_delta=True
    )
    assert delta.shape == (2 * n_samples,)
    with torch.no_grad():
        gap = model(x)[:, 0] - model(b)[:, 0]
    mean_delta = delta.reshape(2, n_samples).mean(1)  # example-major rows
    torch.testing.assert_close(mean_delta, attr.sum(1) - gap, atol=1e-5, rtol=1e-5)
    if n_samples == 1:  # one random point on the path: the gradient there, times x - b
        assert delta.abs().max() > 1e-4  # a ReLU network is not linear: delta is not zero


def test_completeness_holds_exactly_on_a_linear_model_with_noise() -> None:
    torch.manual_seed(1)
    model = BasicLinearModel()
    x, dist = torch.randn(3, 4), torch.randn(5, 4)
    _, delta = GradientShap(model).attribute(
        x, dist, n_samples=6, stdevs=0.3, target=2, return_convergence_delta=True
    )
    assert delta.shape == (18,)
    torch.testing.assert_close(delta, torch.zeros(18), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_samples": 0}, ValueError, "n_samples must be at least 1"),
        ({"stdevs": -1.0}, ValueError, "stdevs must be non-negative"),
        ({"stdevs": (0.1, 0.2)}, ValueError, "stdevs must give one value per input"),
        ({"baselines": torch.zeros(3, 5)}, ValueError, r"baselines\[0\] has shape \(3, 5\)"),
    ],
)
def test_bad_input(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    model = CountingModel(ReLUMLP())
    args = {"baselines": torch.zeros(2, 6), "target": 0, **kwargs}
    with pytest.raises(error, match=match):
        GradientShap(model).attribute(torch.randn(2, 6), **args)
    assert model.calls == 0
