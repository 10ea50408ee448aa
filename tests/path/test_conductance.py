from __future__ import annotations

import doctest
import importlib
import itertools
from typing import Any

import pytest
import torch
from torch import nn

from perspicio.attr import InternalInfluence, LayerConductance, NeuronConductance
from perspicio.path.integral import approximation
from perspicio.testing import ConvNet, MultiInputModel, ReLUMLP
from tests.helpers import CountingModel


def test_doctests() -> None:
    assert doctest.testmod(importlib.import_module("perspicio.path.conductance")).failed == 0


def layer_grads_and_values(model: ReLUMLP, point: torch.Tensor, target: int) -> Any:
    h = model.fc2(torch.relu(model.fc1(point))).detach().requires_grad_()
    (g,) = torch.autograd.grad(model.fc3(torch.relu(h))[:, target].sum(), h)
    return g, h.detach()


@pytest.mark.parametrize("method", ["riemann_trapezoid", "gausslegendre", "riemann_middle"])
def test_layer_conductance_matches_a_plain_loop(method: str) -> None:
    model, x, b = ReLUMLP(), torch.randn(3, 6), torch.randn(1, 6) * 0.1
    n = 7
    alphas, _ = approximation(method, n + 1)
    expected = torch.zeros(3, 8)
    for a0, a1 in itertools.pairwise(alphas):
        g, h0 = layer_grads_and_values(model, b + a0 * (x - b), 2)
        _, h1 = layer_grads_and_values(model, b + a1 * (x - b), 2)
        expected += g * (h1 - h0)
    got = LayerConductance(model, model.fc2).attribute(x, b, 2, n_steps=n, method=method)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_layer_conductance_completeness() -> None:
    model = MultiInputModel()
    x = (torch.randn(3, 4), torch.randn(3, 3))
    scale = torch.tensor([0.5, 1.0, 2.0])
    attrs, delta = LayerConductance(model, model.act).attribute(
        x, target=1, additional_forward_args=(scale,), n_steps=400,
        method="riemann_trapezoid", return_convergence_delta=True,
    )  # fmt: skip
    assert attrs.shape == (3, 6)
    gap = model(*x, scale)[:, 1] - model(torch.zeros(3, 4), torch.zeros(3, 3), scale)[:, 1]
    torch.testing.assert_close(attrs.sum(1), gap, atol=2e-3, rtol=1e-3)
    assert delta.abs().max() < 2e-3


def test_neuron_conductances_add_up_to_the_layer_conductance() -> None:
    model = MultiInputModel()
    x = (torch.randn(2, 4), torch.randn(2, 3))
    layer = LayerConductance(model, model.act).attribute(
        x, target=0, n_steps=300, method="riemann_trapezoid"
    )
    for j in (0, 3, 5):
        per_input = NeuronConductance(model, model.act).attribute(x, j, target=0, n_steps=300)
        total = per_input[0].sum(1) + per_input[1].sum(1)
        torch.testing.assert_close(total, layer[:, j], atol=3e-3, rtol=1e-2)


def test_neuron_conductance_of_a_linear_path_is_its_share_of_ig() -> None:
    # y = fc3(h), h = fc2(...) linear in x on this path when ReLUs are off: the gradient
    # factors exactly, so NeuronConductance = w_j * dh_j/dx * (x - x') for every step.
    model = nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 2))
    x = torch.randn(3, 4)
    got = NeuronConductance(model, model[0]).attribute(x, 2, target=1, n_steps=5)
    expected = model[1].weight[1, 2] * model[0].weight[2] * x
    torch.testing.assert_close(got, expected)


def test_internal_influence_matches_a_plain_loop() -> None:
    model, x = ReLUMLP(), torch.randn(3, 6)
    alphas, weights = approximation("gausslegendre", 6)
    expected = sum(w * layer_grads_and_values(model, a * x, 0)[0] for a, w in zip(alphas, weights))
    got = InternalInfluence(model, model.fc2).attribute(x, target=0, n_steps=6)
    torch.testing.assert_close(got, expected)


def test_layer_input_and_grad_kwargs() -> None:
    model, x = ConvNet(), torch.rand(2, 1, 8, 8)
    at_input = LayerConductance(model, model.relu2).attribute(
        x, target=3, n_steps=4, attribute_to_layer_input=True
    )
    at_output = LayerConductance(model, model.conv2).attribute(x, target=3, n_steps=4)
    torch.testing.assert_close(at_input, at_output)
    got = InternalInfluence(model, model.conv1).attribute(
        x, target=3, n_steps=3, grad_kwargs={"create_graph": True}
    )
    assert got.requires_grad


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_steps": 0}, ValueError, "n_steps must be at least 1"),
        ({"method": "simpson"}, ValueError, "method must be one of"),
        ({"internal_batch_size": 0}, ValueError, "internal_batch_size must be at least 1"),
        ({"target": [0, 1, 2]}, ValueError, "target gives 3 indices"),
        ({"baselines": torch.zeros(3, 6)}, ValueError, "does not match the input's shape"),
    ],
)
@pytest.mark.parametrize("cls", [LayerConductance, InternalInfluence, NeuronConductance])
def test_bad_input_before_any_model_call(
    cls: Any, kwargs: dict[str, Any], error: type, match: str
) -> None:
    model = CountingModel(ReLUMLP())
    method = cls(model, model.model.fc2)
    args = (torch.randn(2, 6), 1) if cls is NeuronConductance else (torch.randn(2, 6),)
    with pytest.raises(error, match=match):
        method.attribute(*args, **kwargs)
    assert model.calls == 0


def test_neuron_conductance_selector_checked_first() -> None:
    model = CountingModel(ReLUMLP())
    with pytest.raises(TypeError, match="neuron_selector must be"):
        NeuronConductance(model, model.model.fc2).attribute(torch.randn(2, 6), 1.0)
    assert model.calls == 0


def test_compute_convergence_delta_takes_layer_attributions() -> None:
    model, x = MultiInputModel(), (torch.randn(3, 4), torch.randn(3, 3))
    lc = LayerConductance(model, model.act)
    attrs, delta = lc.attribute(x, target=2, n_steps=8, return_convergence_delta=True)
    torch.testing.assert_close(lc.compute_convergence_delta(attrs, (0.0, 0.0), x, target=2), delta)
    with pytest.raises(ValueError, match=r"batch sizes \[2\] but end_point has 3 examples"):
        lc.compute_convergence_delta(attrs[:2], (0.0, 0.0), x, target=2)
