from __future__ import annotations

import doctest
import importlib

import pytest
import torch
from torch import nn

from perspicio.attr import (
    FeatureAblation,
    LayerFeatureAblation,
    LayerFeaturePermutation,
    NeuronFeatureAblation,
)
from perspicio.testing import ConvNet, MultiInputModel, ReLUMLP, ReusedReLUNet
from tests.helpers import CountingModel


def test_doctests() -> None:
    module = importlib.import_module("perspicio.perturbation.layer_ablation")
    assert doctest.testmod(module).failed == 0


def hidden(model: ReLUMLP, x: torch.Tensor) -> torch.Tensor:
    return torch.relu(model.fc2(torch.relu(model.fc1(x))))


@pytest.mark.parametrize("per_eval", [1, 3, None])
def test_layer_ablation_of_a_linear_head(per_eval: int | None) -> None:
    # zeroing unit j of relu2 changes the output by w_j * h_j
    model, x = ReLUMLP(), torch.randn(4, 6)
    got = LayerFeatureAblation(model, model.relu2).attribute(
        x, target=[0, 1, 2, 0], perturbations_per_eval=per_eval
    )
    w = model.fc3.weight[[0, 1, 2, 0]]
    torch.testing.assert_close(got, w * hidden(model, x))


def test_layer_mask_and_baselines() -> None:
    model, x = ReLUMLP(), torch.randn(3, 6)
    mask = torch.tensor([[0, 0, 1, 1, 1, 2, 2, 2]])
    got = LayerFeatureAblation(model, model.relu2).attribute(
        x, layer_baselines=0.5, target=1, layer_mask=mask
    )
    contrib = model.fc3.weight[1] * (hidden(model, x) - 0.5)
    expected = torch.stack([contrib[:, mask[0] == g].sum(1) for g in range(3)], 1)[:, mask[0]]
    torch.testing.assert_close(got, expected)


def test_layer_input_and_reused_layer() -> None:
    model, x = ReusedReLUNet(), torch.randn(3, 5)
    # relu's last call is the input of fc3: ablating it (at either side) is the same
    at_output = LayerFeatureAblation(model, model.relu).attribute(x, target=0)
    at_input = LayerFeatureAblation(model, model.fc3).attribute(
        x, target=0, attribute_to_layer_input=True
    )
    torch.testing.assert_close(at_output, at_input)


def test_layer_permutation_of_a_linear_head() -> None:
    model, x = ReLUMLP(), torch.randn(5, 6)
    torch.manual_seed(0)
    got = LayerFeaturePermutation(model, model.relu2).attribute(x, target=2)
    assert got.shape == (5, 8)
    h, w = hidden(model, x), model.fc3.weight[2]
    # each column is w_j (h_j - h_j[perm]) for some permutation of the batch
    diffs = got / w
    for j in range(8):
        shuffled = h[:, j] - diffs[:, j]
        torch.testing.assert_close(shuffled.sort().values, h[:, j].sort().values)
    with pytest.raises(ValueError, match="at least 2 examples"):
        LayerFeaturePermutation(model, model.relu2).attribute(x[:1], target=2)


def test_neuron_feature_ablation_is_ablation_of_the_neuron() -> None:
    model, x = MultiInputModel(), (torch.randn(3, 4), torch.randn(3, 3))
    scale = torch.tensor([1.0, 2.0, 0.5])
    got = NeuronFeatureAblation(model, model.act).attribute(
        x, 4, baselines=(0.2, 0.0), additional_forward_args=(scale,)
    )

    def neuron(a: torch.Tensor, b: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return model.act(model.fa(a) + model.fb(b))[:, 4]

    expected = FeatureAblation(neuron).attribute(
        x, baselines=(0.2, 0.0), additional_forward_args=(scale,)
    )
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)


def test_bad_input() -> None:
    model = CountingModel(ConvNet())
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="perturbations_per_eval must be at least 1"):
        LayerFeatureAblation(model, model.model.conv2).attribute(x, perturbations_per_eval=0)
    with pytest.raises(TypeError, match="neuron_selector must be"):
        NeuronFeatureAblation(model, model.model.conv2).attribute(x, [1, 2])  # type: ignore[arg-type]
    assert model.calls == 0
    with pytest.raises(ValueError, match="layer_mask has shape"):
        LayerFeatureAblation(model, model.model.conv2).attribute(
            x, layer_mask=torch.zeros(3, 3, dtype=torch.long)
        )
    with pytest.raises(ValueError, match="layer_baselines"):
        LayerFeatureAblation(model, model.model.conv2).attribute(x, layer_baselines=torch.zeros(5))
    with pytest.raises(TypeError, match="takes a single layer"):
        LayerFeatureAblation(model, [model.model.conv2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a submodule"):
        LayerFeaturePermutation(model, nn.Linear(2, 2))
