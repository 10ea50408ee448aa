from __future__ import annotations

import pytest
import torch

from perspicio.attr import IntegratedGradients, LayerAttribution, Saliency
from perspicio.testing import BasicLinearModel


def test_get_name() -> None:
    assert IntegratedGradients.get_name() == "Integrated Gradients"
    assert Saliency.get_name() == "Saliency"


def test_forward_func_must_be_callable() -> None:
    with pytest.raises(TypeError, match="forward_func must be a callable"):
        Saliency(3)  # type: ignore[arg-type]


def test_attribute_future_not_implemented_for_gradient_methods() -> None:
    with pytest.raises(NotImplementedError, match="attribute_future"):
        Saliency(BasicLinearModel()).attribute_future(torch.zeros(1, 4))


def test_interpolate_upsamples() -> None:
    out = LayerAttribution.interpolate(torch.arange(4.0).reshape(1, 1, 2, 2), (4, 4))
    assert out.shape == (1, 1, 4, 4)
    assert out[0, 0, 0].tolist() == [0, 0, 1, 1]
    bil = LayerAttribution.interpolate(torch.ones(1, 1, 2, 2), (3, 3), "bilinear")
    torch.testing.assert_close(bil, torch.ones(1, 1, 3, 3))


def test_compute_convergence_delta_on_linear_model() -> None:
    model = BasicLinearModel()
    x = torch.randn(3, 4)
    exact = model.linear.weight[1] * x
    ig = IntegratedGradients(model)
    delta = ig.compute_convergence_delta(exact, 0.0, x, target=1)
    torch.testing.assert_close(delta, torch.zeros(3), atol=1e-5, rtol=0)
    off = ig.compute_convergence_delta(exact + 1.0, 0.0, x, target=1)
    torch.testing.assert_close(off, torch.full((3,), 4.0), atol=1e-5, rtol=0)


def test_flags() -> None:
    model = BasicLinearModel()
    assert IntegratedGradients(model).has_convergence_delta()
    assert IntegratedGradients(model).multiplies_by_inputs
    assert not IntegratedGradients(model, multiply_by_inputs=False).multiplies_by_inputs
    assert not Saliency(model).has_convergence_delta()
