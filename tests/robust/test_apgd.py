from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio import ArgumentError
from perspicio.robust import APGD, PGD
from perspicio.robust.apgd import checkpoints
from perspicio.testing.digits import accuracy
from tests.helpers import CountingModel
from tests.robust.conftest import Linear, pick


def test_checkpoints_follow_the_paper() -> None:
    # Croce and Hein (2020), section 3.2: p_0 = 0, p_1 = 0.22, steps shrinking by 0.03 to 0.06
    assert checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(10) == [0, 3, 5, 6, 7, 8, 9]


@pytest.mark.parametrize("norm", ["Linf", "L2"])
@pytest.mark.parametrize("random_start", [False, True])
def test_stays_inside_the_ball_and_the_bounds(norm: str, random_start: bool) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3), nn.Softmax(dim=1))
    x = torch.rand(7, 6)
    mask = torch.tensor([[1.0, 1, 0, 1, 1, 0]])
    adv = APGD(model, lower_bound=0.05, upper_bound=0.95).perturb(
        x, 0.25, 15, [0, 1, 2, 0, 1, 2, 0], random_start=random_start, norm=norm, mask=mask
    )
    assert (adv >= 0.05).all() and (adv <= 0.95).all()
    base = x.clamp(0.05, 0.95)
    assert torch.equal(adv[:, [2, 5]], base[:, [2, 5]])
    diff = (adv - base).flatten(1)
    size = diff.abs().amax(1) if norm == "Linf" else diff.norm(dim=1)
    assert (size <= 0.25 + 1e-5).all()


def test_linear_loss_reaches_the_corner_of_the_ball() -> None:
    # the loss w[t] . x grows along sign(w[t]); the best point of the Linf ball is its corner
    w = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 0.3, 3.0]], dtype=torch.float64)
    x = torch.randn(4, 3, dtype=torch.float64)
    t = torch.tensor([0, 1, 1, 0])
    adv = APGD(Linear(w), pick).perturb(x, 0.3, 12, t)
    torch.testing.assert_close(adv, x + 0.3 * torch.sign(w[t]))
    adv = APGD(Linear(w), pick).perturb(x, 0.3, 12, t, targeted=True)
    torch.testing.assert_close(adv, x - 0.3 * torch.sign(w[t]))


def test_beats_pgd_with_a_mistuned_step_on_digits(digits: tuple) -> None:
    cnn, data = digits
    x, y = data.x_test[:200], data.y_test[:200]
    loss = nn.CrossEntropyLoss(reduction="none")
    pgd = PGD(cnn, loss, 0.0, 1.0).perturb(x, 0.1, 0.002, 15, y)
    apgd = APGD(cnn, loss, 0.0, 1.0).perturb(x, 0.1, 15, y)
    with torch.no_grad():
        assert loss(cnn(apgd), y).mean() > loss(cnn(pgd), y).mean()
    assert accuracy(cnn, apgd, y) < accuracy(cnn, pgd, y)
    strong = APGD(cnn, loss, 0.0, 1.0).perturb(data.x_test, 0.2, 10, data.y_test)
    assert accuracy(cnn, strong, data.y_test) <= 0.05


def test_bad_arguments() -> None:
    m = CountingModel(nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)))
    x = torch.randn(3, 4)
    for kwargs, message in [
        ({"radius": -0.1}, "radius"),
        ({"step_num": 0}, "step_num"),
        ({"norm": "L3"}, "norm"),
        ({"rho": 1.5}, "rho must be in"),
        ({"alpha": -0.5}, "alpha"),
    ]:
        args = {"radius": 0.1, "step_num": 3, "target": 0, **kwargs}
        with pytest.raises(ArgumentError, match=message):
            APGD(m).perturb(x, **args)
    assert m.calls == 0
    with pytest.raises(ArgumentError, match="one loss per example"):
        APGD(m, nn.NLLLoss()).perturb(x, 0.1, 3, torch.tensor([0, 1, 2]))
