from __future__ import annotations

import torch

from perspicio.attr import InputXGradient
from perspicio.testing import BasicLinearModel


def test_linear_closed_form() -> None:
    model = BasicLinearModel()
    x = torch.randn(3, 4)
    got = InputXGradient(model).attribute(x, target=[0, 1, 2])
    torch.testing.assert_close(got, model.linear.weight[[0, 1, 2]] * x)
    assert InputXGradient(model).multiplies_by_inputs


def test_tuple_in_tuple_out() -> None:
    model = BasicLinearModel()
    out = InputXGradient(model).attribute((torch.randn(2, 4),), target=0)
    assert isinstance(out, tuple) and out[0].shape == (2, 4)
