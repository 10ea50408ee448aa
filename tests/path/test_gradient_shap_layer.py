"""LayerGradientShap and NeuronGradientShap."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio.attr import GradientShap, LayerGradientShap, NeuronGradientShap
from perspicio.testing import MultiInputModel, ReLUMLP
from tests.helpers import CountingModel


def linear_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 2))


def test_layer_gradient_shap_on_a_linear_head() -> None:
    # the gradient at the hidden layer is constant, so every sample gives
    # w * (h(x + noise) - h(baseline)); with one baseline and no noise that is exact
    model, x, base = linear_net(), torch.randn(3, 4), torch.randn(1, 4)
    attrs, delta = LayerGradientShap(model, model[0]).attribute(
        x, base, n_samples=3, target=1, return_convergence_delta=True
    )
    torch.testing.assert_close(attrs, model[1].weight[1] * (model[0](x) - model[0](base)))
    assert delta.shape == (9,) and delta.abs().max() < 1e-5


def test_layer_gradient_shap_is_gradient_shap_at_the_first_layer_input() -> None:
    model, x, dist = ReLUMLP(), torch.randn(4, 6), torch.randn(7, 6)
    torch.manual_seed(2)
    got = LayerGradientShap(model, model.fc1).attribute(
        x, dist, n_samples=4, stdevs=0.1, target=2, attribute_to_layer_input=True
    )
    torch.manual_seed(2)
    expected = GradientShap(model).attribute(x, dist, n_samples=4, stdevs=0.1, target=2)
    torch.testing.assert_close(got, expected)


def test_neuron_gradient_shap_on_a_linear_neuron() -> None:
    model, x, base = linear_net(), torch.randn(3, 4), torch.randn(1, 4)
    got = NeuronGradientShap(model, model[0]).attribute(x, 3, base, n_samples=2)
    torch.testing.assert_close(got, model[0].weight[3] * (x - base))


def test_multi_input_and_callable_baselines() -> None:
    model = MultiInputModel()
    x = (torch.randn(3, 4), torch.randn(3, 3))
    dist = lambda: (torch.zeros(2, 4), torch.ones(2, 3))  # noqa: E731
    out = LayerGradientShap(model, model.act).attribute(x, dist, target=1)
    assert out.shape == (3, 6)
    got = NeuronGradientShap(model, model.act).attribute(x, (slice(0, 2),), dist, stdevs=(0.1, 0.2))
    assert isinstance(got, tuple) and [t.shape for t in got] == [(3, 4), (3, 3)]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_samples": 0}, ValueError, "n_samples must be at least 1"),
        ({"stdevs": -1.0}, ValueError, "stdevs must be non-negative"),
        ({"baselines": None}, ValueError, "baselines are required"),
        ({"baselines": torch.zeros(2, 5)}, ValueError, "a distribution of baselines needs"),
    ],
)
def test_bad_input_before_any_model_call(kwargs: dict, error: type, match: str) -> None:
    model = CountingModel(ReLUMLP())
    args = {"baselines": torch.zeros(2, 6), **kwargs}
    with pytest.raises(error, match=match):
        LayerGradientShap(model, model.model.fc2).attribute(torch.randn(2, 6), **args)
    with pytest.raises(error, match=match):
        NeuronGradientShap(model, model.model.fc2).attribute(torch.randn(2, 6), 0, **args)
    assert model.calls == 0
