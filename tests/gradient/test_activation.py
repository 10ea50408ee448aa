from __future__ import annotations

import doctest
import importlib
from typing import Any

import pytest
import torch
from torch import nn

from perspicio.attr import LayerActivation, LayerGradientXActivation, NeuronGradient
from perspicio.testing import ConvNet, MultiInputModel, ReLUMLP, ReusedReLUNet
from tests.helpers import CountingModel

# DataParallel needs the model on its first GPU when there is one
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def test_doctests() -> None:
    module = importlib.import_module("perspicio.gradient.activation")
    assert doctest.testmod(module).failed == 0


def test_layer_activation_is_the_captured_activation() -> None:
    model, x = ReLUMLP(), torch.randn(3, 6)
    torch.testing.assert_close(LayerActivation(model, model.fc1).attribute(x), model.fc1(x))
    got = LayerActivation(model, model.fc2).attribute(x, attribute_to_layer_input=True)
    torch.testing.assert_close(got, torch.relu(model.fc1(x)))


def test_layer_activation_list_and_extra_args() -> None:
    model, x = MultiInputModel(), (torch.randn(3, 4), torch.randn(3, 3))
    scale = torch.tensor([1.0, 2.0, 3.0])
    fa, out = LayerActivation(model, [model.fa, model.out]).attribute(x, (scale,))
    torch.testing.assert_close(fa, model.fa(x[0]))
    torch.testing.assert_close(out, model(*x, scale))


def test_reused_layer_gives_its_last_call() -> None:
    model, x = ReusedReLUNet(), torch.randn(3, 5)
    last = torch.relu(model.fc2(torch.relu(model.fc1(x))))
    torch.testing.assert_close(LayerActivation(model, model.relu).attribute(x), last)
    got = LayerGradientXActivation(model, model.relu).attribute(x, target=0)
    torch.testing.assert_close(got, last * model.fc3.weight[0])


def manual_grad_x_act(model: ReLUMLP, x: torch.Tensor, target: int) -> torch.Tensor:
    h = model.fc2(torch.relu(model.fc1(x))).detach().requires_grad_()
    (g,) = torch.autograd.grad(model.fc3(torch.relu(h))[:, target].sum(), h)
    return g * h.detach()


@pytest.mark.parametrize("memory_efficient", [False, True])
def test_gradient_x_activation(memory_efficient: bool) -> None:
    model, x = ReLUMLP(), torch.randn(4, 6)
    method = LayerGradientXActivation(model, model.fc2, memory_efficient=memory_efficient)
    got = method.attribute(x, target=1)
    assert got.device.type == "cpu"
    torch.testing.assert_close(got, manual_grad_x_act(model, x, 1))


def test_gradient_without_activation() -> None:
    model, x = ReLUMLP(), torch.randn(4, 6)
    got = LayerGradientXActivation(model, model.relu2, multiply_by_inputs=False).attribute(x, 2)
    torch.testing.assert_close(got, model.fc3.weight[2].expand(4, -1))
    assert not LayerGradientXActivation(
        model, model.fc1, multiply_by_inputs=False
    ).multiplies_by_inputs


def test_grad_kwargs_are_passed_on() -> None:
    model, x = ReLUMLP(), torch.randn(2, 6)
    got = LayerGradientXActivation(model, model.fc2).attribute(
        x, 0, grad_kwargs={"create_graph": True}
    )
    assert got.requires_grad


def test_neuron_gradient_matches_autograd() -> None:
    model, x = ConvNet(), torch.rand(2, 1, 8, 8)
    got = NeuronGradient(model, model.conv2).attribute(x, (3, 4, 5))
    leaf = x.clone().requires_grad_()
    (expected,) = torch.autograd.grad(
        model.conv2(model.relu1(model.conv1(leaf)))[:, 3, 4, 5].sum(), leaf
    )
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(
    ("selector", "error", "match"),
    [
        ((16, 0, 0), ValueError, "out of range"),
        ((0, 0, 0, 0), ValueError, "has 4 indices"),
        (lambda out: out.sum(), ValueError, "one value per example"),
        (lambda out: out[:2, 0, 0, 0], ValueError, "one value per example"),
    ],
)
def test_bad_neuron_selectors(selector: Any, error: type, match: str) -> None:
    model = ConvNet()
    with pytest.raises(error, match=match):
        NeuronGradient(model, model.conv2).attribute(torch.rand(3, 1, 8, 8), selector)


@pytest.mark.parametrize("selector", [1.5, "a", (0, 1.0), True])
def test_selector_type_is_checked_before_any_model_call(selector: Any) -> None:
    model = CountingModel(ReLUMLP())
    with pytest.raises(TypeError, match="neuron_selector must be"):
        NeuronGradient(model, model.model.fc1).attribute(torch.randn(2, 6), selector)
    assert model.calls == 0


def test_integer_inputs_are_refused_before_any_model_call() -> None:
    model = CountingModel(nn.Sequential(nn.Embedding(5, 3), nn.Flatten(), nn.Linear(6, 2)))
    with pytest.raises(TypeError, match="floating-point inputs"):
        NeuronGradient(model, model.model[2]).attribute(torch.tensor([[1, 2]]), 0)
    assert model.calls == 0


def test_layer_not_in_the_model() -> None:
    with pytest.raises(ValueError, match="not a submodule of the model"):
        LayerActivation(ReLUMLP(), nn.Linear(6, 8))
    with pytest.raises(ValueError, match="non-empty list"):
        LayerGradientXActivation(ReLUMLP(), [])


def test_layer_not_called_by_a_forward_function() -> None:
    model, stray = ReLUMLP(), nn.Linear(6, 8)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model(x)

    with pytest.raises(ValueError, match="was not called during the forward pass"):
        LayerActivation(forward, stray).attribute(torch.randn(2, 6))
    with pytest.raises(ValueError, match="was not called during the forward pass"):
        NeuronGradient(forward, stray).attribute(torch.randn(2, 6), 0)


def test_neuron_methods_take_one_layer() -> None:
    model = ReLUMLP()
    with pytest.raises(TypeError, match="takes a single layer"):
        NeuronGradient(model, [model.fc1, model.fc2])  # type: ignore[arg-type]


def test_dataparallel_forward_func() -> None:
    model, x = ReLUMLP().to(DEV), torch.randn(3, 6, device=DEV)
    wrapped = nn.DataParallel(model)
    plain = LayerGradientXActivation(model, model.fc2).attribute(x, 1)
    torch.testing.assert_close(LayerGradientXActivation(wrapped, model.fc2).attribute(x, 1), plain)

    def forward(inp: torch.Tensor) -> torch.Tensor:
        return wrapped(inp)

    ids = [0] if DEV == "cuda" else None
    got = LayerGradientXActivation(forward, model.fc2, device_ids=ids).attribute(x, 1)
    torch.testing.assert_close(got, plain)
