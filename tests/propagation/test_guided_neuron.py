"""NeuronGuidedBackprop and NeuronDeconvolution (more in tests/_core/test_sites.py)."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch
from torch import nn

from perspicio.attr import Deconvolution, GuidedBackprop, NeuronDeconvolution, NeuronGuidedBackprop
from perspicio.testing import ConvNet


def test_doctests() -> None:
    assert doctest.testmod(importlib.import_module("perspicio.propagation.guided")).failed == 0


@pytest.mark.parametrize(("neuron", "primary"), [
    (NeuronGuidedBackprop, GuidedBackprop), (NeuronDeconvolution, Deconvolution)
])  # fmt: skip
def test_callable_selector_on_a_relu_layer(neuron: type, primary: type) -> None:
    # the selected neurons are outputs of a ReLU, whose backward rule applies to them too
    model, x = ConvNet(), torch.rand(2, 1, 8, 8)
    got = neuron(model, model.relu2).attribute(x, lambda out: out[:, 3].mean((1, 2)))
    head = nn.Sequential(
        model.conv1, model.relu1, model.conv2, model.relu2,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip
    torch.testing.assert_close(got, primary(head).attribute(x, target=3))


def test_model_must_be_a_module() -> None:
    model = ConvNet()
    with pytest.raises(TypeError, match="needs a torch.nn.Module"):
        NeuronGuidedBackprop(lambda x: model(x), model.conv1)  # type: ignore[arg-type]
