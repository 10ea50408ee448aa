from __future__ import annotations

import pytest
import torch

from perspicio.attr import IntegratedGradients, NoiseTunnel, Saliency
from perspicio.testing import BasicLinearModel, ReLUMLP
from tests.helpers import CountingModel


class Square(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x**2).sum(1)


def reference(x: torch.Tensor, nt_samples: int, sd: float, nt_type: str) -> torch.Tensor:
    """Saliency (abs=False) of sum(x²) is 2x: aggregate it over the same noise draws."""
    torch.manual_seed(7)
    noise = torch.randn(x.shape[0], nt_samples, *x.shape[1:]) * sd
    grads = 2 * (x.unsqueeze(1) + noise)
    if nt_type == "smoothgrad":
        return grads.mean(1)
    if nt_type == "smoothgrad_sq":
        return (grads**2).mean(1)
    return (grads**2).mean(1) - grads.mean(1) ** 2


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
@pytest.mark.parametrize("batch", [None, 1, 4])
def test_matches_reference_aggregation(nt_type: str, batch: int | None) -> None:
    x = torch.randn(3, 5)
    torch.manual_seed(7)
    got = NoiseTunnel(Saliency(Square())).attribute(
        x, nt_type=nt_type, nt_samples=6, nt_samples_batch_size=batch, stdevs=0.3, abs=False
    )
    torch.testing.assert_close(got, reference(x, 6, 0.3, nt_type), atol=1e-5, rtol=1e-5)


def test_no_noise_smoothgrad_equals_the_method_and_vargrad_is_zero() -> None:
    model = ReLUMLP()
    x = torch.randn(2, 6)
    plain = IntegratedGradients(model).attribute(x, target=0, n_steps=8)
    nt = NoiseTunnel(IntegratedGradients(model))
    torch.testing.assert_close(nt.attribute(x, stdevs=0.0, target=0, n_steps=8), plain)
    var = nt.attribute(x, nt_type="vargrad", stdevs=0.0, target=0, n_steps=8)
    torch.testing.assert_close(var, torch.zeros_like(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("batch", [None, 3])
def test_per_example_targets_and_delta_are_expanded(batch: int | None) -> None:
    """Without noise every copy of example i is example i with target i: the aggregate is the
    method's attribution and each copy's delta is the example's own delta."""
    model = ReLUMLP()
    x = torch.randn(3, 6)
    ig = IntegratedGradients(model)
    plain, plain_delta = ig.attribute(x, target=[2, 0, 1], return_convergence_delta=True)
    attr, delta = NoiseTunnel(ig).attribute(
        x,
        nt_samples=4,
        nt_samples_batch_size=batch,
        stdevs=0.0,
        target=[2, 0, 1],
        return_convergence_delta=True,
    )
    torch.testing.assert_close(attr, plain)
    assert delta.shape == (12,)  # example-major: example i's copies are rows 4i .. 4i + 3
    torch.testing.assert_close(delta, plain_delta.repeat_interleave(4))


def test_draw_baseline_from_distribution() -> None:
    model = BasicLinearModel()
    x = torch.randn(2, 4)
    dist = torch.ones(5, 4)
    got = NoiseTunnel(IntegratedGradients(model)).attribute(
        x, stdevs=0.0, draw_baseline_from_distrib=True, baselines=dist, target=1
    )
    torch.testing.assert_close(got, model.linear.weight[1] * (x - 1))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"nt_type": "smooth"}, ValueError, "nt_type must be one of"),
        ({"nt_samples": 0}, ValueError, "nt_samples must be at least 1"),
        ({"stdevs": (0.1, 0.1)}, ValueError, "stdevs must give one value per input"),
        ({"nt_samples_batch_size": 0}, ValueError, "nt_samples_batch_size must be at least 1"),
    ],
)
def test_bad_input(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    model = CountingModel(ReLUMLP())
    with pytest.raises(error, match=match):
        NoiseTunnel(Saliency(model)).attribute(torch.randn(2, 6), target=0, **kwargs)
    assert model.calls == 0


def test_wraps_only_attribution_objects() -> None:
    with pytest.raises(TypeError, match="attribution_method"):
        NoiseTunnel(ReLUMLP())  # type: ignore[arg-type]


def test_integer_inputs_cannot_take_noise() -> None:
    with pytest.raises(TypeError, match="integer inputs"):
        NoiseTunnel(Saliency(ReLUMLP())).attribute(torch.zeros(2, 6, dtype=torch.long), target=0)
