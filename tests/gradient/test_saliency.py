from __future__ import annotations

import torch

from perspicio.attr import Saliency
from perspicio.testing import BasicLinearModel, MultiInputModel


def test_linear_closed_form_and_abs() -> None:
    model = BasicLinearModel()
    x = torch.randn(3, 4)
    w = model.linear.weight[1]
    torch.testing.assert_close(Saliency(model).attribute(x, target=1), w.abs().expand(3, -1))
    torch.testing.assert_close(Saliency(model).attribute(x, target=1, abs=False), w.expand(3, -1))


def test_multi_input_with_extra_args_matches_autograd() -> None:
    model = MultiInputModel()
    a, b = torch.randn(2, 4, requires_grad=True), torch.randn(2, 3, requires_grad=True)
    scale = torch.tensor([2.0, -1.0])
    ga, gb = torch.autograd.grad(model(a, b, scale)[:, 2].sum(), (a, b))
    got = Saliency(model).attribute((a, b), target=2, abs=False, additional_forward_args=scale)
    torch.testing.assert_close(got[0], ga)
    torch.testing.assert_close(got[1], gb)
    assert a.grad is None


def test_callable_target() -> None:
    model = BasicLinearModel()
    x = torch.randn(2, 4)
    got = Saliency(model).attribute(x, target=lambda out: out[:, 0] - out[:, 2], abs=False)
    torch.testing.assert_close(got, (model.linear.weight[0] - model.linear.weight[2]).expand(2, -1))
