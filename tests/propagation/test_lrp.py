"""LRP and LayerLRP: conservation, closed forms, rule resolution, residue, bad input."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch import nn

from perspicio.attr import LRP, EpsilonRule, GammaRule, IdentityRule, LayerLRP
from perspicio.lrp import EpsilonPlus, Sum, ZPlusRule, lrp_rules
from perspicio.testing import ConvNet, MultiInputModel, ReLUMLP, ReusedReLUNet, TinyResNet
from tests.conformance.battery import assert_same_state, snapshot
from tests.helpers import CountingModel


def bias_free_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 8, bias=False), nn.ReLU(), nn.Linear(8, 8, bias=False), nn.ReLU(),
        nn.Linear(8, 3, bias=False),
    )  # fmt: skip


def bias_free_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Dropout(), nn.Linear(24, 5, bias=False),
    ).eval()  # fmt: skip


@pytest.mark.parametrize(
    ("make", "shape"), [(bias_free_mlp, (5, 6)), (bias_free_cnn, (3, 1, 8, 8))]
)
def test_relevance_is_conserved_without_biases(make: type, shape: tuple[int, ...]) -> None:
    model = make()
    x = torch.rand(*shape) if len(shape) > 2 else torch.randn(*shape)
    attr, delta = LRP(model).attribute(x, target=2, return_convergence_delta=True)
    out = model(x)[:, 2].detach()
    torch.testing.assert_close(attr.reshape(len(x), -1).sum(1), out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(delta, out - attr.reshape(len(x), -1).sum(1))
    assert delta.abs().max() < 1e-5


def test_lrp0_is_gradient_times_input_on_a_bias_free_relu_network() -> None:
    model, x = bias_free_mlp(), torch.randn(4, 6)
    for m in model:
        if isinstance(m, nn.Linear):
            m.rule = EpsilonRule(0.0)
    attr = LRP(model).attribute(x, target=[0, 1, 2, 0])
    xg = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(model(xg)[range(4), [0, 1, 2, 0]].sum(), xg)
    torch.testing.assert_close(attr, g * x)


def test_linear_model_closed_form() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    x = torch.randn(5, 4)
    z = layer(x).detach()[:, 1]
    expected = x * layer.weight[1].detach() * z[:, None] / (z[:, None] + 1e-9)
    torch.testing.assert_close(LRP(nn.Sequential(layer)).attribute(x, target=1), expected)


def test_module_rule_overrides_default_and_is_left_alone() -> None:
    model, x = ReLUMLP(), torch.randn(3, 6)
    plain = LRP(model).attribute(x, target=0)
    rule = GammaRule(0.5)
    model.fc1.rule = rule
    keys = [sorted(vars(m)) for m in model.modules()]
    gamma = LRP(model).attribute(x, target=0)
    assert not torch.allclose(plain, gamma)
    assert model.fc1.rule is rule and keys == [sorted(vars(m)) for m in model.modules()]
    # the same as a composite that gives fc1 the rule, and a module.rule beats a composite
    del model.fc1.rule
    from perspicio.lrp import Composite

    only_fc1 = Composite({}, lookup=lambda m: rule if m is model.fc1 else None)
    torch.testing.assert_close(LRP(model, composite=only_fc1).attribute(x, target=0), gamma)
    model.fc1.rule = rule
    zplus = Composite({nn.Linear: ZPlusRule()})
    got = LRP(model, composite=zplus).attribute(x, target=0)
    expected_rules = lrp_rules(model, zplus)
    assert expected_rules["fc1"][1] is rule and isinstance(expected_rules["fc2"][1], ZPlusRule)
    assert torch.isfinite(got).all()


class _Leaf(nn.Module):
    """Computes ``fn`` without registering it as a child: one leaf for the whole block."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = [fn]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn[0](x)


def test_rule_on_a_container_owns_its_subtree() -> None:
    torch.manual_seed(0)
    block = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))  # LayerNorm has no default rule
    model = nn.Sequential(nn.Linear(3, 4), block, nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(TypeError, match=r"module 1\.1 \(LayerNorm\) has no LRP rule"):
        LRP(model).attribute(torch.randn(2, 3), target=0)
    block.rule = IdentityRule()
    x = torch.randn(2, 3)
    leaf = _Leaf(block)
    leaf.rule = IdentityRule()
    same = nn.Sequential(model[0], leaf, model[2], model[3])
    torch.testing.assert_close(LRP(model).attribute(x, target=0), LRP(same).attribute(x, target=0))


def test_missing_rule_is_reported_before_any_model_call() -> None:
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=1))
    model = CountingModel(inner)
    with pytest.raises(TypeError, match=r"module model\.1 \(Softmax\) has no LRP rule"):
        LRP(model).attribute(torch.randn(2, 3), target=0)
    assert model.calls == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"composite": "eps"}, TypeError, "composite must be a Composite, got str"),
        ({"canonizers": [1]}, TypeError, "canonizers must be Canonizer instances, got int"),
    ],
)
def test_bad_options(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        LRP(ReLUMLP(), **kwargs)


def test_bad_rule_attribute_and_model() -> None:
    model = ReLUMLP()
    model.fc2.rule = "epsilon"
    with pytest.raises(TypeError, match=r"module fc2 \(Linear\) has rule 'epsilon'"):
        LRP(model)
    with pytest.raises(TypeError, match="LRP needs a torch.nn.Module"):
        LRP(lambda x: x)  # type: ignore[arg-type]


def test_bad_input_is_reported_before_any_model_call() -> None:
    model = CountingModel(ReLUMLP())
    with pytest.raises(TypeError, match="has dtype torch.int64"):
        LRP(model).attribute(torch.ones(2, 6, dtype=torch.long), target=0)
    with pytest.raises(ValueError, match="target"):
        LRP(model).attribute(torch.randn(2, 6), target=[0, 1, 2])
    assert model.calls == 0


def test_output_must_give_one_score_per_example() -> None:
    class Total(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x).sum()

    with pytest.raises(ValueError, match=r"LRP needs one target score per example, got shape \(\)"):
        LRP(Total()).attribute(torch.randn(2, 3))


def test_reused_module_equals_separate_modules() -> None:
    model, x = ReusedReLUNet(), torch.randn(3, 5)
    separate = nn.Sequential(model.fc1, nn.ReLU(), model.fc2, nn.ReLU(), model.fc3)
    torch.testing.assert_close(
        LRP(model).attribute(x, target=1), LRP(separate).attribute(x, target=1)
    )


def test_tuple_inputs_and_additional_args() -> None:
    model = MultiInputModel()
    a, b, scale = torch.randn(3, 4), torch.randn(3, 3), torch.tensor([0.5, 1.0, 2.0])
    attr, delta = LRP(model).attribute(
        (a, b), target=2, additional_forward_args=(scale,), return_convergence_delta=True
    )
    assert isinstance(attr, tuple) and attr[0].shape == a.shape and attr[1].shape == b.shape
    out = model(a, b, scale)[:, 2].detach()
    total = attr[0].sum(1) + attr[1].sum(1)
    torch.testing.assert_close(delta, out - total)
    torch.testing.assert_close(LRP(model).compute_convergence_delta(attr, out), delta)


def test_model_is_untouched_by_a_call() -> None:
    from perspicio.lrp import MergeBatchNorm, ResNetCanonizer

    model, x = TinyResNet(), torch.rand(2, 3, 8, 8)
    before, y = snapshot(model), model(x)
    lrp = LRP(model, composite=EpsilonPlus(), canonizers=[MergeBatchNorm(), ResNetCanonizer()])
    lrp.attribute(x, target=[1, 3])
    assert_same_state(before, snapshot(model))
    assert torch.equal(model(x), y)


def test_verbose_logs_the_rules(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="perspicio.propagation.lrp"):
        LRP(ReLUMLP()).attribute(torch.randn(2, 6), target=0, verbose=True)
    assert "LRP applies EpsilonRule(STABILITY_FACTOR=1e-09) to fc1 (Linear)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="perspicio.propagation.lrp"):
        LRP(ReLUMLP()).attribute(torch.randn(2, 6), target=0)
    assert caplog.text == ""


def test_properties() -> None:
    lrp = LRP(ReLUMLP())
    assert lrp.has_convergence_delta() and lrp.multiplies_by_inputs
    with pytest.raises(NotImplementedError):
        lrp.attribute_future()


def test_rearranging_leaves_need_no_rule() -> None:
    rules = lrp_rules(ConvNet())
    assert "flatten" not in rules and isinstance(rules["relu1"][1], IdentityRule)
    assert isinstance(lrp_rules(nn.Sequential(Sum()))["0"][1], EpsilonRule)


# --- LayerLRP ------------------------------------------------------------------------------


def test_layer_lrp_at_the_output_layer_is_the_score() -> None:
    model, x = ReLUMLP(), torch.randn(3, 6)
    rel = LayerLRP(model, model.fc3).attribute(x, target=[0, 2, 1])
    out = model(x).detach()
    expected = torch.zeros_like(out)
    expected[range(3), [0, 2, 1]] = out[range(3), [0, 2, 1]]
    torch.testing.assert_close(rel, expected)


def test_layer_lrp_at_the_first_layer_input_is_lrp() -> None:
    model, x = ReLUMLP(), torch.randn(3, 6)
    rel = LayerLRP(model, model.fc1).attribute(x, target=1, attribute_to_layer_input=True)
    torch.testing.assert_close(rel, LRP(model).attribute(x, target=1))


def test_layer_lrp_conserves_layer_by_layer_without_biases() -> None:
    model, x = bias_free_cnn(), torch.rand(2, 1, 8, 8)
    layers = [model[0], model[3], model[8]]
    rel, deltas = LayerLRP(model, layers).attribute(x, target=4, return_convergence_delta=True)
    assert isinstance(rel, list) and [r.shape[1:] for r in rel] == [(4, 8, 8), (6, 4, 4), (5,)]
    assert isinstance(deltas, list) and all(d.abs().max() < 1e-5 for d in deltas)


def test_layer_lrp_on_a_reused_layer_takes_the_last_call() -> None:
    model, x = ReusedReLUNet(), torch.randn(3, 5)
    separate = nn.Sequential(model.fc1, nn.ReLU(), model.fc2, nn.ReLU(), model.fc3)
    got = LayerLRP(model, model.relu).attribute(x, target=0)
    torch.testing.assert_close(got, LayerLRP(separate, separate[3]).attribute(x, target=0))


def test_layer_lrp_bad_layer() -> None:
    model = ReLUMLP()
    with pytest.raises(ValueError, match="is not a submodule of the model"):
        LayerLRP(model, copy.deepcopy(model.fc1))
