from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio import ArgumentError
from perspicio.robust import CarliniWagnerL2
from perspicio.testing.digits import accuracy
from tests.helpers import CountingModel


def test_linear_model_reaches_the_closed_form_distance() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(5, 3).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    out = lin(x).detach()
    t = out.argmax(1)
    adv = CarliniWagnerL2(lin).perturb(x, t, binary_search_steps=8, step_num=200, step_size=0.05)
    w = lin.weight.detach()
    # the nearest decision boundary of a linear model: min_j (Z_t - Z_j) / ||W_t - W_j||
    for i in range(6):
        ti = int(t[i])
        nearest = min(
            float((out[i, ti] - out[i, j]) / (w[ti] - w[j]).norm()) for j in range(3) if j != ti
        )
        dist = float((adv[i] - x[i]).norm())
        assert nearest <= dist <= 1.02 * nearest
    assert (lin(adv).argmax(1) != t).all()


def test_targeted_with_confidence_and_mask() -> None:
    lin = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(3))
    x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    adv = CarliniWagnerL2(lin).perturb(
        x, [2, 2], targeted=True, confidence=0.5, binary_search_steps=8, step_num=150,
        step_size=0.05, mask=mask,
    )  # fmt: skip
    logits = lin(adv)
    assert (logits.argmax(1) == 2).all()
    others = logits[:, :2].amax(1)
    assert (logits[:, 2] - others >= 0.5 - 1e-4).all()
    assert torch.equal(adv[:, 1], x[:, 1])


def test_digits_cnn_in_the_box(digits: tuple) -> None:
    cnn, data = digits
    x, y = data.x_test[:40], data.y_test[:40]
    adv = CarliniWagnerL2(cnn, 0.0, 1.0).perturb(x, y, step_num=40, step_size=0.05)
    assert (adv >= 0).all() and (adv <= 1).all()
    assert accuracy(cnn, adv, y) <= 0.05
    assert (adv - x).flatten(1).norm(dim=1).median() < 1.5  # the image norm is about 3.5


def test_nothing_found_returns_the_inputs() -> None:
    lin = nn.Linear(4, 2)
    x = torch.randn(3, 4)
    t = lin(x).argmax(1)
    adv = CarliniWagnerL2(lin).perturb(x, t, initial_const=1e-6, binary_search_steps=1, step_num=3)
    assert torch.equal(adv, x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"confidence": -1.0}, "confidence"),
        ({"initial_const": 0.0}, "initial_const must be above 0"),
        ({"binary_search_steps": 0}, "binary_search_steps"),
        ({"step_num": 0}, "step_num"),
        ({"step_size": 0.0}, "step_size"),
        ({"target": None}, "target is required"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    m = CountingModel(nn.Linear(4, 2))
    with pytest.raises(ArgumentError, match=message):
        CarliniWagnerL2(m).perturb(torch.randn(3, 4), **{"target": 0, **kwargs})
    assert m.calls == 0
    with pytest.raises(ArgumentError, match="logits of shape"):
        CarliniWagnerL2(lambda x: x.sum(1)).perturb(torch.randn(3, 4), 0)
