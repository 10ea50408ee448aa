from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from perspicio import ArgumentError
from perspicio.robust import FGSM, PGD
from perspicio.testing.digits import accuracy
from tests.helpers import CountingModel
from tests.robust.conftest import Linear, pick


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3), nn.Softmax(dim=1)).double()


@pytest.mark.parametrize("norm", ["Linf", "L2"])
@pytest.mark.parametrize("random_start", [False, True])
@pytest.mark.parametrize("targeted", [False, True])
def test_stays_inside_the_ball_and_the_bounds(
    norm: str, random_start: bool, targeted: bool
) -> None:
    torch.manual_seed(3)
    x = torch.rand(8, 6, dtype=torch.float64)
    mask = (torch.rand(1, 6) > 0.3).double()
    radius = 0.3
    adv = PGD(model(), lower_bound=0.1, upper_bound=0.9).perturb(
        x, radius, 0.07, 12, [0, 1, 2, 0, 1, 2, 0, 1], targeted=targeted,
        random_start=random_start, norm=norm, mask=mask,
    )  # fmt: skip
    assert adv.shape == x.shape
    assert (adv >= 0.1).all() and (adv <= 0.9).all()
    # the start and the steps are masked; the bounds may move a fixed element only into them
    fixed = (mask == 0).expand_as(x)
    assert torch.equal(adv[fixed], x.clamp(0.1, 0.9)[fixed])
    diff = (adv - x.clamp(0.1, 0.9)).flatten(1)
    size = diff.abs().amax(1) if norm == "Linf" else diff.norm(dim=1)
    assert (size <= radius + 1e-6).all()
    assert (size > 0.05).all()  # it moved


@pytest.mark.parametrize("steps", [1, 3, 10])
def test_linf_closed_form_on_a_linear_model(steps: int) -> None:
    w = torch.tensor([[1.0, -2.0, 0.0, 0.5], [-1.0, 0.0, 3.0, 0.25]], dtype=torch.float64)
    x = torch.randn(4, 4, dtype=torch.float64)
    t = torch.tensor([0, 1, 1, 0])
    adv = PGD(Linear(w), pick).perturb(x, 0.25, 0.1, steps, t)
    expected = x + torch.sign(w[t]) * min(steps * 0.1, 0.25)
    torch.testing.assert_close(adv, expected)


@pytest.mark.parametrize("steps", [1, 3, 10])
def test_l2_closed_form_on_a_linear_model(steps: int) -> None:
    w = torch.tensor([[1.0, -2.0, 0.0, 0.5], [-1.0, 0.0, 3.0, 0.25]], dtype=torch.float64)
    x = torch.randn(4, 4, dtype=torch.float64)
    t = torch.tensor([0, 1, 1, 0])
    adv = PGD(Linear(w), pick).perturb(x, 0.3, 0.1, steps, t, norm="L2")
    # sign steps along a fixed direction, then a rescale onto the sphere: 3 nonzero elements
    c = min(steps * 0.1, 0.3 / math.sqrt(3))
    torch.testing.assert_close(adv, x + torch.sign(w[t]) * c, atol=1e-6, rtol=0)


def test_one_step_is_fgsm() -> None:
    x = torch.rand(5, 6, dtype=torch.float64)
    t = [0, 1, 2, 1, 0]
    pgd = PGD(model(), lower_bound=0.2, upper_bound=0.8).perturb(x, 1.0, 0.1, 1, t)
    fgsm = FGSM(model(), lower_bound=0.2, upper_bound=0.8).perturb(x, 0.1, t)
    torch.testing.assert_close(pgd, fgsm)


def test_tuple_inputs_come_back_as_a_tuple() -> None:
    def f(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.softmax(torch.cat([a, b], 1), 1)

    out = PGD(f).perturb((torch.rand(2, 2), torch.rand(2, 1)), 0.1, 0.05, 2, 0)
    assert isinstance(out, tuple) and [o.shape for o in out] == [(2, 2), (2, 1)]


def test_digits_cnn_falls_below_five_percent(digits: tuple) -> None:
    cnn, data = digits
    assert accuracy(cnn, data.x_train, data.y_train) >= 0.98
    assert accuracy(cnn, data.x_test, data.y_test) >= 0.98
    loss = nn.CrossEntropyLoss(reduction="none")
    adv = PGD(cnn, loss, 0.0, 1.0).perturb(data.x_test, 0.2, 0.05, 10, data.y_test)
    assert (adv - data.x_test).abs().max() <= 0.2 + 1e-6
    assert accuracy(cnn, adv, data.y_test) <= 0.05


def test_targeted_attack_reaches_the_target(digits: tuple) -> None:
    cnn, data = digits
    x, wanted = data.x_test[:64], (data.y_test[:64] + 1) % 10
    loss = nn.CrossEntropyLoss(reduction="none")
    adv = PGD(cnn, loss, 0.0, 1.0).perturb(x, 0.3, 0.05, 20, wanted, targeted=True)
    assert accuracy(cnn, adv, wanted) >= 0.9


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"radius": -1.0}, "radius must be at least 0"),
        ({"step_size": -0.1}, "step_size"),
        ({"step_num": 0}, "step_num must be at least 1"),
        ({"norm": "L1"}, "norm must be one of"),
        ({"mask": (torch.ones(1, 4), torch.ones(1, 4))}, "one tensor per input"),
    ],
)
def test_bad_arguments(call: dict, message: str) -> None:
    m = CountingModel(nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)))
    kwargs = {"radius": 0.1, "step_size": 0.01, "step_num": 2, "target": 0, **call}
    with pytest.raises(ArgumentError, match=message):
        PGD(m).perturb(torch.randn(3, 4), **kwargs)
    assert m.calls == 0
    with pytest.raises(TypeError, match="step_num"):
        PGD(m).perturb(torch.randn(3, 4), 0.1, 0.01, 2.0, 0)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="upper_bound"):
        PGD(m, lower_bound=0.5, upper_bound=-0.5)
