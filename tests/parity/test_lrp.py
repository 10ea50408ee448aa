"""LRP and LayerLRP give Captum's numbers on the models Captum supports (Captum is an oracle)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from perspicio import attr as ours
from perspicio.testing import MultiInputModel, ReLUMLP

captum_attr = pytest.importorskip("captum.attr")
captum_rules = pytest.importorskip("captum.attr._utils.lrp_rules")


class ConvClassifier(nn.Module):
    """Every layer kind Captum's LRP has a default for (the flatten is functional)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AvgPool2d(2)
        self.pool3 = nn.AdaptiveAvgPool2d(2)
        self.drop = nn.Dropout(0.3)
        self.fc1 = nn.Linear(24, 10)
        self.tanh = nn.Tanh()
        self.fc2 = nn.Linear(10, 4)
        self.bn.running_mean.uniform_(-0.2, 0.2)
        self.bn.running_var.uniform_(0.5, 1.5)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool3(self.pool2(self.relu2(self.bn(self.conv2(x)))))
        return self.fc2(self.tanh(self.fc1(self.drop(torch.flatten(x, 1)))))


def no_rules(model: nn.Module, rules: Any) -> None:
    pass


def gamma(model: nn.Module, rules: Any) -> None:
    layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    layers[0].rule = rules.GammaRule(0.3)
    layers[1].rule = rules.GammaRule(0.1, set_bias_to_zero=True)


def alpha_beta(model: nn.Module, rules: Any) -> None:
    layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    layers[0].rule = rules.Alpha1_Beta0_Rule()
    layers[-1].rule = rules.Alpha1_Beta0_Rule(set_bias_to_zero=True)


def mixed(model: nn.Module, rules: Any) -> None:
    layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    layers[1].rule = rules.EpsilonRule(epsilon=0.1)
    layers[-1].rule = rules.GammaRule()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.rule = rules.IdentityRule()


SETTINGS = [no_rules, gamma, alpha_beta, mixed]
MODELS: list[tuple[Callable[[], nn.Module], Callable[[], Any], dict[str, Any]]] = [
    (ReLUMLP, lambda: torch.randn(4, 6), {"target": [0, 1, 2, 0]}),
    (ConvClassifier, lambda: torch.randn(3, 1, 8, 8), {"target": 3}),
    (
        MultiInputModel,
        lambda: (torch.randn(3, 4), torch.randn(3, 3)),
        {"target": 1, "additional_forward_args": (torch.tensor([0.5, 1.0, 2.0]),)},
    ),
]


def pair(make: Callable[[], nn.Module], setting: Callable[..., None]) -> tuple[Any, Any]:
    """The same model twice, with the rules of Captum and of perspicio set on its modules."""
    theirs, mine = make(), make()
    mine.load_state_dict(theirs.state_dict())
    setting(theirs, captum_rules)
    setting(mine, ours)
    return theirs, mine


def close(a: Any, b: Any) -> None:
    for x, y in zip(
        a if isinstance(a, tuple | list) else (a,), b if isinstance(b, tuple | list) else (b,)
    ):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.__name__)
@pytest.mark.parametrize(
    ("make", "inputs", "kwargs"), MODELS, ids=lambda v: getattr(v, "__name__", "")
)
def test_lrp_parity(make: Any, inputs: Any, kwargs: dict[str, Any], setting: Any) -> None:
    torch.manual_seed(1)
    x = inputs()
    theirs, mine = pair(make, setting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected, expected_delta = captum_attr.LRP(theirs).attribute(
            x, return_convergence_delta=True, **kwargs
        )
    got, delta = ours.LRP(mine).attribute(x, return_convergence_delta=True, **kwargs)
    close(got, expected)
    torch.testing.assert_close(delta, expected_delta, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("to_input", [False, True])
@pytest.mark.parametrize("setting", [no_rules, gamma], ids=lambda s: s.__name__)
def test_layer_lrp_parity(to_input: bool, setting: Any) -> None:
    torch.manual_seed(2)
    x = torch.randn(3, 1, 8, 8)
    theirs, mine = pair(ConvClassifier, setting)
    results = []
    for model, module in ((theirs, captum_attr), (mine, ours)):
        layers = [model.conv2, model.fc1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results.append(
                module.LayerLRP(model, layers).attribute(
                    x, target=2, return_convergence_delta=True, attribute_to_layer_input=to_input
                )
            )
        setting(model, captum_rules if module is captum_attr else ours)  # Captum drops them
    (expected, expected_delta), (got, delta) = results
    assert isinstance(got, list) and len(got) == 2
    close(got, expected)
    close(delta, expected_delta)


def test_layer_lrp_single_layer_parity() -> None:
    x = torch.randn(4, 6)
    theirs, mine = pair(ReLUMLP, no_rules)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = captum_attr.LayerLRP(theirs, theirs.fc2).attribute(x, target=1)
    close(ours.LayerLRP(mine, mine.fc2).attribute(x, target=1), expected)
