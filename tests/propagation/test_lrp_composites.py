"""Named composites: which rule each layer gets, direct use, conservation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio.lrp import (
    LRP,
    EpsilonGammaBox,
    EpsilonPlus,
    EpsilonPlusFlat,
    EpsilonRule,
    FlatRule,
    GammaRule,
    IdentityRule,
    ZBoxRule,
    ZPlusRule,
)
from perspicio.testing import ConvNet


def bias_free_cnn() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(24, 8, bias=False), nn.ReLU(), nn.Linear(8, 4, bias=False),
    )  # fmt: skip
    with torch.no_grad():  # outputs of order 1, so that the stabilisers' share is small
        for m in model:
            if isinstance(m, nn.Conv2d | nn.Linear):
                m.weight.mul_(3.0)
    return model


@pytest.mark.parametrize(
    ("composite", "first", "conv"),
    [
        (EpsilonPlus(), ZPlusRule, ZPlusRule),
        (EpsilonGammaBox(0.0, 1.0), ZBoxRule, GammaRule),
        (EpsilonPlusFlat(), FlatRule, ZPlusRule),
    ],
    ids=["EpsilonPlus", "EpsilonGammaBox", "EpsilonPlusFlat"],
)
def test_rule_map(composite: object, first: type, conv: type) -> None:
    model = ConvNet()
    rules = composite.resolve(model)  # type: ignore[attr-defined]
    assert isinstance(rules[model.conv1], first) and isinstance(rules[model.conv2], conv)
    assert isinstance(rules[model.fc1], EpsilonRule) and isinstance(
        rules[model.relu1], IdentityRule
    )
    assert model.flatten not in rules and model.pool not in rules


def test_first_layer_may_be_dense() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    rules = EpsilonPlusFlat().resolve(model)
    assert isinstance(rules[model[1]], FlatRule) and isinstance(rules[model[3]], EpsilonRule)
    assert not any(isinstance(r, FlatRule) for r in EpsilonPlusFlat().resolve(nn.ReLU()).values())


@pytest.mark.parametrize(
    "composite",
    [EpsilonPlus(), EpsilonGammaBox(0.0, 1.0), EpsilonPlusFlat()],
    ids=["EpsilonPlus", "EpsilonGammaBox", "EpsilonPlusFlat"],
)
def test_composites_conserve_relevance_without_biases(composite: object) -> None:
    model, x = bias_free_cnn(), torch.rand(3, 1, 8, 8)
    attr, delta = LRP(model, composite=composite).attribute(  # type: ignore[arg-type]
        x, target=2, return_convergence_delta=True
    )
    out = model(x)[:, 2].detach()
    torch.testing.assert_close(attr.reshape(3, -1).sum(1), out, atol=1e-5, rtol=1e-3)
    assert delta.abs().max() < 1e-3 * out.abs().max()


def test_composite_as_a_context_manager() -> None:
    model, composite = ConvNet(), EpsilonGammaBox(0.0, 1.0)
    x = torch.rand(2, 1, 8, 8).requires_grad_()
    with composite.context(model):
        out = model(x)[:, 5]
        (g,) = torch.autograd.grad(out, x, out.detach())  # seeded with the scores
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    expected = LRP(model, composite=composite).attribute(x.detach(), target=5)
    torch.testing.assert_close(g, expected)


def test_zbox_gives_relevance_to_dark_pixels() -> None:
    # gradient × input forms give nothing to a zero pixel; z^B does
    model, x = bias_free_cnn(), torch.rand(1, 1, 8, 8)
    x[0, 0, 2:5, 2:5] = 0.0
    box = LRP(model, composite=EpsilonGammaBox(0.0, 1.0)).attribute(x, target=1)
    plain = LRP(model).attribute(x, target=1)
    assert plain[0, 0, 3, 3] == 0 and box[0, 0, 2:5, 2:5].abs().sum() > 0
