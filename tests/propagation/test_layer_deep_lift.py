from __future__ import annotations

import doctest
import importlib

import pytest
import torch
from torch import nn

from perspicio.attr import (
    DeepLift,
    DeepLiftShap,
    LayerDeepLift,
    LayerDeepLiftShap,
    NeuronDeepLift,
    NeuronDeepLiftShap,
)
from perspicio.testing import ConvNet, ReLUMLP, TinyResNet
from tests.helpers import CountingModel


def test_doctests() -> None:
    module = importlib.import_module("perspicio.propagation.layer_deep_lift")
    assert doctest.testmod(module).failed == 0


def pool_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
        nn.MaxPool2d(2), nn.Sigmoid(), nn.Flatten(), nn.Linear(64, 5),
    )  # fmt: skip


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4, 6])
@pytest.mark.parametrize("to_input", [False, True])
def test_layer_deeplift_completeness(index: int, to_input: bool) -> None:
    model = pool_net()
    x, base = torch.rand(3, 1, 8, 8), torch.rand(1, 1, 8, 8) * 0.2
    attrs, delta = LayerDeepLift(model, model[index]).attribute(
        x, base, target=2, attribute_to_layer_input=to_input, return_convergence_delta=True
    )
    gap = model(x)[:, 2] - model(base)[:, 2]
    torch.testing.assert_close(attrs.reshape(3, -1).sum(1), gap, atol=1e-5, rtol=1e-4)
    assert delta.abs().max() < 1e-5


def test_layer_deeplift_at_the_first_layer_input_is_deeplift() -> None:
    model, x = TinyResNet(), torch.rand(2, 3, 8, 8)
    got = LayerDeepLift(model, model.conv1).attribute(x, target=3, attribute_to_layer_input=True)
    torch.testing.assert_close(got, DeepLift(model).attribute(x, target=3))


def test_layer_deeplift_local_and_custom() -> None:
    model, x = ReLUMLP(), torch.randn(3, 6)
    local = LayerDeepLift(model, model.relu2, multiply_by_inputs=False).attribute(x, target=0)
    torch.testing.assert_close(local, model.fc3.weight[0].expand(3, -1))
    doubled = LayerDeepLift(model, model.relu2).attribute(
        x,
        target=0,
        custom_attribution_func=lambda m, x_, b: tuple(
            2 * a * (u - v) for a, u, v in zip(m, x_, b)
        ),
    )
    torch.testing.assert_close(
        doubled, 2 * LayerDeepLift(model, model.relu2).attribute(x, target=0)
    )


def test_layer_deeplift_shap_is_the_mean_over_baselines() -> None:
    model, x, dist = ReLUMLP(), torch.randn(3, 6), torch.randn(4, 6)
    got, delta = LayerDeepLiftShap(model, model.fc2).attribute(
        x, dist, target=1, return_convergence_delta=True
    )
    each = [
        LayerDeepLift(model, model.fc2).attribute(x, dist[j : j + 1], target=1) for j in range(4)
    ]
    torch.testing.assert_close(got, torch.stack(each).mean(0))
    assert delta.shape == (12,) and delta.abs().max() < 1e-5


def test_neuron_deeplift_completeness() -> None:
    model, x = ConvNet(), torch.rand(2, 1, 8, 8)
    got = NeuronDeepLift(model, model.fc1).attribute(x, 11)

    def neuron(v: torch.Tensor) -> torch.Tensor:
        h = model.pool(model.relu2(model.conv2(model.relu1(model.conv1(v)))))
        return model.fc1(model.flatten(h))[:, 11]

    torch.testing.assert_close(
        got.reshape(2, -1).sum(1), neuron(x) - neuron(0 * x), atol=1e-5, rtol=1e-4
    )


def test_neuron_deeplift_shap_is_the_mean_over_baselines() -> None:
    model, x, dist = ReLUMLP(), torch.randn(3, 6), torch.randn(4, 6)
    got = NeuronDeepLiftShap(model, model.relu2).attribute(x, 2, dist)
    each = [NeuronDeepLift(model, model.relu2).attribute(x, 2, dist[j : j + 1]) for j in range(4)]
    torch.testing.assert_close(got, torch.stack(each).mean(0))
    shap = DeepLiftShap(nn.Sequential(model.fc1, model.relu1, model.fc2, model.relu2))
    torch.testing.assert_close(got, shap.attribute(x, dist, target=2))


def test_bad_input_before_any_model_call() -> None:
    model = CountingModel(ReLUMLP())
    with pytest.raises(TypeError, match="needs a torch.nn.Module"):
        LayerDeepLift(lambda x: x, model.model.fc1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a single layer"):
        LayerDeepLift(model, [model.model.fc1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="floating-point inputs"):
        LayerDeepLift(model, model.model.fc1).attribute(torch.ones(2, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="baselines are required"):
        LayerDeepLiftShap(model, model.model.fc1).attribute(torch.randn(2, 6), None)
    with pytest.raises(TypeError, match="neuron_selector must be"):
        NeuronDeepLift(model, model.model.fc1).attribute(torch.randn(2, 6), "3")  # type: ignore[arg-type]
    assert model.calls == 0
