from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from perspicio.attr import IntegratedGradients
from perspicio.path.integral import METHODS, approximation
from perspicio.testing import BasicLinearModel, ConvNet, MultiInputModel, ReLUMLP, TinyResNet
from tests.helpers import CountingModel


def reference_ig(
    model: nn.Module, x: torch.Tensor, b: torch.Tensor, target: int, n: int, method: str
) -> torch.Tensor:
    """A plain loop over the path points, one forward/backward each."""
    alphas, weights = approximation(method, n)
    total = torch.zeros_like(x)
    for a, w in zip(alphas, weights):
        point = (b + a * (x - b)).detach().requires_grad_()
        (g,) = torch.autograd.grad(model(point)[:, target].sum(), point)
        total += w * g
    return total * (x - b)


@pytest.mark.parametrize("method", METHODS)
def test_matches_a_plain_loop_over_alphas(method: str) -> None:
    model = ConvNet()
    x = torch.rand(3, 1, 8, 8)
    b = torch.rand(1, 1, 8, 8) * 0.2
    got = IntegratedGradients(model).attribute(x, b, target=4, n_steps=9, method=method)
    torch.testing.assert_close(got, reference_ig(model, x, b, 4, 9, method), atol=1e-5, rtol=1e-4)


def test_linear_closed_form() -> None:
    model = BasicLinearModel()
    x, b = torch.randn(5, 4), torch.randn(5, 4)
    got = IntegratedGradients(model).attribute(x, b, target=2, n_steps=3)
    torch.testing.assert_close(got, model.linear.weight[2] * (x - b))


@pytest.mark.parametrize(("model", "shape"), [(ReLUMLP(), (4, 6)), (TinyResNet(), (2, 3, 8, 8))])
def test_completeness_on_relu_networks(model: nn.Module, shape: tuple[int, ...]) -> None:
    x = torch.randn(*shape)
    _, delta = IntegratedGradients(model).attribute(
        x, target=1, n_steps=300, return_convergence_delta=True
    )
    out = model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]
    assert (delta.abs() <= 2e-3 * out.abs().clamp(min=1)).all()


def test_completeness_on_a_smooth_multi_input_model() -> None:
    model = MultiInputModel()
    x = (torch.randn(3, 4), torch.randn(3, 3))
    scale = torch.tensor([0.5, 1.0, 2.0])
    attrs, delta = IntegratedGradients(model).attribute(
        x, target=0, additional_forward_args=(scale,), return_convergence_delta=True
    )
    assert isinstance(attrs, tuple) and len(attrs) == 2
    with torch.no_grad():
        gap = model(*x, scale)[:, 0] - model(torch.zeros(3, 4), torch.zeros(3, 3), scale)[:, 0]
    torch.testing.assert_close(attrs[0].sum(1) + attrs[1].sum(1), gap, atol=1e-4, rtol=1e-4)
    assert delta.shape == (3,)
    assert delta.abs().max() < 1e-4


def test_local_attribution_is_the_integrated_gradient() -> None:
    model = BasicLinearModel()
    x = torch.randn(2, 4)
    got = IntegratedGradients(model, multiply_by_inputs=False).attribute(x, target=0)
    torch.testing.assert_close(got, model.linear.weight[0].expand(2, -1))


def test_dataparallel_model() -> None:
    model = ReLUMLP()
    x = torch.randn(3, 6)
    plain = IntegratedGradients(model).attribute(x, target=1, n_steps=10)
    wrapped = IntegratedGradients(nn.DataParallel(model)).attribute(x, target=1, n_steps=10)
    torch.testing.assert_close(plain, wrapped)


def test_does_not_accumulate_parameter_gradients() -> None:
    model = ReLUMLP()
    IntegratedGradients(model).attribute(torch.randn(2, 6), target=0, n_steps=5)
    assert all(p.grad is None for p in model.parameters())


BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"n_steps": 0}, ValueError, "n_steps must be at least 1"),
    ({"method": "simpson"}, ValueError, "method must be one of"),
    ({"baselines": torch.zeros(2, 5)}, ValueError, r"baselines\[0\] has shape \(2, 5\)"),
    ({"target": [0, 1]}, ValueError, "target gives 2 indices but the batch has 3"),
    ({"internal_batch_size": 0}, ValueError, "internal_batch_size must be at least 1"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD)
def test_bad_input_raises_before_any_model_call(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    model = CountingModel(ReLUMLP())
    with pytest.raises(error, match=match):
        IntegratedGradients(model).attribute(torch.randn(3, 6), **{"target": 0, **kwargs})
    assert model.calls == 0


@pytest.mark.parametrize(
    ("inputs", "error", "match"),
    [
        ([[1.0, 2.0]], TypeError, r"inputs\[0\] must be a torch.Tensor"),
        (torch.zeros(3, 6, dtype=torch.long), TypeError, "floating-point inputs"),
        ((torch.zeros(3, 4), torch.zeros(2, 3)), ValueError, "same batch size"),
    ],
)
def test_bad_inputs(inputs: Any, error: type[Exception], match: str) -> None:
    model = CountingModel(MultiInputModel())
    with pytest.raises(error, match=match):
        IntegratedGradients(model).attribute(inputs, target=0)
    assert model.calls == 0


def test_target_out_of_range_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="target index 3 is out of range"):
        IntegratedGradients(ReLUMLP()).attribute(torch.randn(2, 6), target=3)
