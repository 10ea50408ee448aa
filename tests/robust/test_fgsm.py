from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio import ArgumentError
from perspicio.robust import FGSM, PGD
from tests.helpers import CountingModel
from tests.robust.conftest import Linear, pick


def weights() -> torch.Tensor:
    w = torch.tensor([[1.0, -2.0, 0.0, 0.5], [-1.0, 0.0, 3.0, 0.25], [0.3, 0.3, -0.3, 0.0]])
    return w.double()


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.7])
def test_linear_model_moves_exactly_epsilon_sign_grad(targeted: bool, epsilon: float) -> None:
    w = weights()
    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 1, 2, 0, 1, 2])
    adv = FGSM(Linear(w), pick).perturb(x, epsilon, t, targeted=targeted)
    sign = -1 if targeted else 1
    # an element with zero gradient does not move
    torch.testing.assert_close(adv, x + sign * epsilon * torch.sign(w[t]), rtol=0, atol=1e-12)


def test_default_loss_is_minus_log_of_the_target_probability() -> None:
    w = weights()
    model = nn.Sequential(Linear(w), nn.Softmax(dim=1))
    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = [2, 0, 1, 1, 0]
    p = model(x).detach()
    # d(-log p_t)/dx = -(W_t - sum_c p_c W_c)
    grad = -(w[t] - p @ w)
    adv = FGSM(model).perturb(x, 0.2, t)
    expected = torch.where(grad.abs() > 1e-6, x + 0.2 * grad.sign(), x)
    torch.testing.assert_close(adv, expected)


def test_tuple_inputs_masks_bounds_and_extra_args() -> None:
    def f(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
        return torch.stack([(a * scale).sum(1) + b.sum(1), -b.sum(1)], 1)

    a, b = torch.full((3, 2), 0.5), torch.zeros(3, 3)
    mask = (torch.tensor([[1.0, 0.0]]), torch.ones(3, 3))
    out = FGSM(f, pick, lower_bound=-0.05, upper_bound=0.6).perturb(
        (a, b), 0.3, torch.tensor([0, 0, 0]), additional_forward_args=2.0, mask=mask
    )
    assert isinstance(out, tuple) and len(out) == 2
    torch.testing.assert_close(out[0], torch.tensor([[0.6, 0.5]] * 3))  # clamped, masked
    torch.testing.assert_close(out[1], torch.full((3, 3), 0.3))


def test_leaves_the_model_and_inputs_as_they_were() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.0), nn.Softmax(dim=1)).train()
    x = torch.randn(2, 4, requires_grad=True)
    before = [p.detach().clone() for p in model.parameters()]
    for attack in (FGSM(model), PGD(model)):
        kwargs = (
            {"epsilon": 0.1}
            if isinstance(attack, FGSM)
            else dict(radius=0.1, step_size=0.05, step_num=3)
        )
        attack.perturb(x, target=1, **kwargs)
    assert model.training and x.requires_grad and x.grad is None
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    y = torch.randn(2, 4)
    FGSM(model).perturb(y, 0.1, 0)
    assert not y.requires_grad


@pytest.mark.parametrize(
    ("ctor", "call", "message"),
    [
        ({}, {"epsilon": -0.1}, "epsilon must be at least 0"),
        ({}, {"epsilon": float("nan")}, "epsilon"),
        ({"lower_bound": 1.0, "upper_bound": 0.0}, {"epsilon": 0.1}, "lower_bound"),
        ({}, {"epsilon": 0.1, "mask": torch.ones(3, 5)}, "mask"),
    ],
)
def test_bad_arguments_are_rejected_before_any_model_call(
    ctor: dict, call: dict, message: str
) -> None:
    model = CountingModel(nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)))
    kwargs = {"target": 0, **call}
    with pytest.raises(ArgumentError, match=message):
        FGSM(model, **ctor).perturb(torch.randn(3, 4), **kwargs)
    assert model.calls == 0


def test_a_target_outside_the_output_is_named() -> None:
    with pytest.raises(ArgumentError, match="target"):
        FGSM(nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))).perturb(torch.randn(3, 4), 0.1, 7)


def test_type_errors() -> None:
    with pytest.raises(TypeError, match="forward_func"):
        FGSM(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="epsilon"):
        FGSM(nn.Linear(2, 2)).perturb(torch.zeros(1, 2), "0.1", 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="floating-point"):
        FGSM(nn.Linear(2, 2)).perturb(torch.zeros(1, 2, dtype=torch.long), 0.1, 0)


def test_a_batch_loss_gives_the_sign_of_its_gradient() -> None:
    # Captum indexes the loss per example and fails on a scalar; the sign of the gradient of
    # the mean is that of the per-example gradients (a positive scale)
    w = weights().float()
    x = torch.randn(4, 4)
    t = torch.tensor([0, 1, 2, 1])
    mean_loss = FGSM(Linear(w), lambda out, y: pick(out, y).mean()).perturb(x, 0.1, t)
    per_example = FGSM(Linear(w), pick).perturb(x, 0.1, t)
    torch.testing.assert_close(mean_loss, per_example)
