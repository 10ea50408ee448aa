from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio.attr import DeepLift, DeepLiftShap
from perspicio.testing import (
    BasicLinearModel,
    ConvNet,
    MultiInputModel,
    ReLUMLP,
    ReusedReLUNet,
    TinyResNet,
)
from tests.helpers import CountingModel

# DataParallel needs the model on its first GPU when there is one
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def act_net(act: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), act, nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3))


MODELS = [
    (ReLUMLP(), (4, 6)),
    (ConvNet(), (3, 1, 8, 8)),
    (TinyResNet(), (2, 3, 8, 8)),
    (ReusedReLUNet(), (3, 5)),
    *[(act_net(a), (4, 5)) for a in (nn.Sigmoid(), nn.ELU(), nn.LeakyReLU(0.1), nn.Softplus())],
    (
        nn.Sequential(
            nn.Conv1d(2, 3, 3), nn.ReLU(), nn.MaxPool1d(2, stride=1), nn.Flatten(), nn.Linear(21, 2)
        ),
        (3, 2, 10),
    ),
]


@pytest.mark.parametrize(
    ("model", "shape"), MODELS, ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else ""
)
def test_completeness(model: nn.Module, shape: tuple[int, ...]) -> None:
    x, b = torch.randn(*shape), torch.randn(1, *shape[1:]) * 0.3
    attr, delta = DeepLift(model).attribute(x, b, target=1, return_convergence_delta=True)
    expected = model(x)[:, 1] - model(b.expand_as(x))[:, 1]
    torch.testing.assert_close(
        attr.reshape(len(x), -1).sum(1), expected.detach(), atol=1e-4, rtol=1e-4
    )
    assert delta.abs().max() < 1e-4


def test_rescale_rule_by_hand() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    x, b = torch.randn(2, 3), torch.randn(2, 3)
    l1, l2 = model[0], model[2]
    z, zr = l1(x), l1(b)
    m = (torch.relu(z) - torch.relu(zr)) / (z - zr)  # secant slope per hidden unit
    expected = (l2.weight[0] * m) @ l1.weight * (x - b)
    torch.testing.assert_close(DeepLift(model).attribute(x, b), expected.detach())


def test_rescale_rule_takes_the_gradient_where_the_input_equals_the_reference() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(3))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[1.0, 2.0, 3.0]]))
    x = torch.tensor([[1.0, 2.0, -1.0]])
    b = torch.tensor([[0.0, 2.0, -1.0]])  # units 2 and 3: no difference, plain gradient
    got = DeepLift(model, multiply_by_inputs=False).attribute(x, b)
    # unit 1: secant slope 1; unit 2: ReLU'(2) = 1; unit 3: ReLU'(-1) = 0
    torch.testing.assert_close(got, torch.tensor([[1.0, 2.0, 0.0]]))
    x2 = torch.tensor([[1.0, -2.0, 4.0]])
    b2 = torch.tensor([[-1.0, -2.0, 0.0]])  # every difference but one is non-zero
    got = DeepLift(model, multiply_by_inputs=False).attribute(x2, b2)
    torch.testing.assert_close(got, torch.tensor([[0.5, 0.0, 3.0]]))


def test_linear_model_closed_form() -> None:
    model = BasicLinearModel()
    x, b = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(
        DeepLift(model).attribute(x, b, target=0), model.linear.weight[0] * (x - b)
    )


def test_maxpool_rule_conserves_even_with_overlapping_windows() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=1),
        nn.Flatten(),
        nn.Linear(72, 2),
    )
    x = torch.rand(2, 1, 8, 8)
    _, delta = DeepLift(model).attribute(x, target=0, return_convergence_delta=True)
    assert delta.abs().max() < 1e-5


def test_multipliers_and_custom_functions() -> None:
    model = ReLUMLP()
    x, b = torch.randn(3, 6), torch.randn(3, 6)
    mult = DeepLift(model, multiply_by_inputs=False).attribute(x, b, target=0)
    full = DeepLift(model).attribute(x, b, target=0)
    torch.testing.assert_close(full, mult * (x - b))
    for func in (
        lambda m: tuple(t * 2 for t in m),
        lambda m, i: tuple(t * v for t, v in zip(m, i)),
        lambda m, i, r: tuple(t * (v - s) for t, v, s in zip(m, i, r)),
    ):
        assert (
            DeepLift(model).attribute(x, b, target=0, custom_attribution_func=func).shape == x.shape
        )
    got = DeepLift(model).attribute(
        x,
        b,
        target=0,
        custom_attribution_func=lambda m, i, r: tuple(t * (v - s) for t, v, s in zip(m, i, r)),
    )
    torch.testing.assert_close(got, full)
    with pytest.raises(ValueError, match="1, 2 or 3 arguments"):
        DeepLift(model).attribute(x, b, target=0, custom_attribution_func=lambda: None)


def test_multi_input_with_extra_args() -> None:
    model = MultiInputModel()
    x = (torch.randn(3, 4), torch.randn(3, 3))
    scale = torch.tensor([1.0, 2.0, 0.5])
    attrs, delta = DeepLift(model).attribute(
        x, target=2, additional_forward_args=scale, return_convergence_delta=True
    )
    assert isinstance(attrs, tuple) and delta.abs().max() < 1e-5


def test_deepliftshap_is_the_mean_over_baselines() -> None:
    model = ReLUMLP()
    x, dist = torch.randn(3, 6), torch.randn(4, 6)
    got, delta = DeepLiftShap(model).attribute(
        x, dist, target=[0, 1, 2], return_convergence_delta=True
    )
    ref = torch.stack(
        [DeepLift(model).attribute(x, d.unsqueeze(0), target=[0, 1, 2]) for d in dist]
    ).mean(0)
    torch.testing.assert_close(got, ref)
    assert delta.shape == (12,) and delta.abs().max() < 1e-5


def test_dataparallel_and_reused_modules() -> None:
    model = ReusedReLUNet().to(DEV)
    x = torch.randn(3, 5, device=DEV)
    torch.testing.assert_close(
        DeepLift(nn.DataParallel(model)).attribute(x, target=0),
        DeepLift(model).attribute(x, target=0),
    )


def test_needs_a_module_and_validates_first() -> None:
    with pytest.raises(TypeError, match="DeepLift needs a torch.nn.Module"):
        DeepLift(lambda x: x)  # type: ignore[arg-type]
    model = CountingModel(ReLUMLP())
    with pytest.raises(ValueError, match=r"baselines\[0\] has shape"):
        DeepLift(model).attribute(torch.randn(2, 6), torch.zeros(2, 3), target=0)
    with pytest.raises(ValueError, match="baselines are required"):
        DeepLiftShap(model).attribute(torch.randn(2, 6), None, target=0)
    assert model.calls == 0
