"""Guided Backpropagation and Deconvolution (and their Neuron variants): ReLU gradient overrides."""

from __future__ import annotations

from typing import Any

from torch import nn

from perspicio._core.attribution import GradientAttribution, NeuronAttribution
from perspicio._core.call import Call, TensorOrTensors, build_call
from perspicio._core.forward import NeuronSelector, check_neuron_selector
from perspicio._core.sites import InputSite, Objective, neuron_objective, target_objective
from perspicio.propagation.composite import Composite
from perspicio.propagation.deep_lift import check_model
from perspicio.propagation.rules import DeconvReLURule, GuidedReLURule, PropagationRule


class _ReLUOverride(GradientAttribution):
    _rule: PropagationRule

    def __init__(self, model: nn.Module) -> None:
        check_model(model, type(self).__name__)
        super().__init__(model)
        self.model = model

    def attribute(
        self, inputs: TensorOrTensors, target: Any = None, additional_forward_args: Any = None
    ) -> TensorOrTensors:
        """Input gradients with every ``nn.ReLU`` module's backward overridden."""
        call = build_call(inputs, target, additional_forward_args, require_float=True)
        return self._overridden_grads(call, target_objective(self.model))

    def _overridden_grads(self, call: Call, objective: Objective) -> TensorOrTensors:
        with Composite({nn.ReLU: self._rule}).context(self.model):
            grads, _ = InputSite().grads(objective, call)
        return call.restore(grads)


class GuidedBackprop(_ReLUOverride):
    """Guided Backpropagation (Springenberg et al., 2014, https://arxiv.org/abs/1412.6806).

    Gradients in which every ReLU module also blocks negative backward signals.

    Example:
        >>> import torch
        >>> from perspicio.attr import GuidedBackprop
        >>> from perspicio.testing import ReLUMLP
        >>> GuidedBackprop(ReLUMLP()).attribute(torch.randn(2, 6), target=0).shape
        torch.Size([2, 6])
    """

    _rule = GuidedReLURule()


class Deconvolution(_ReLUOverride):
    """Deconvolution (Zeiler & Fergus, 2014, https://arxiv.org/abs/1311.2901).

    Gradients in which every ReLU module applies a ReLU to the backward signal instead of its
    forward mask.

    Example:
        >>> import torch
        >>> from perspicio.attr import Deconvolution
        >>> from perspicio.testing import ReLUMLP
        >>> Deconvolution(ReLUMLP()).attribute(torch.randn(2, 6), target=0).shape
        torch.Size([2, 6])
    """

    _rule = DeconvReLURule()


class _NeuronReLUOverride(NeuronAttribution, _ReLUOverride):
    def __init__(self, model: nn.Module, layer: nn.Module, device_ids: list[int] | None = None):
        _ReLUOverride.__init__(self, model)
        NeuronAttribution.__init__(self, model, layer, device_ids)

    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTensors,
        neuron_selector: NeuronSelector,
        additional_forward_args: Any = None,
        attribute_to_neuron_input: bool = False,
    ) -> TensorOrTensors:
        """Input gradients of the selected neuron, with every ``nn.ReLU``'s backward overridden.

        Args:
            neuron_selector: an int or a tuple of ints and slices indexing the layer's output
                after the batch dimension, or a callable mapping the layer's output to one
                value per example.
            attribute_to_neuron_input: select the neuron from the layer's input.
        """
        check_neuron_selector(neuron_selector)
        call = build_call(inputs, None, additional_forward_args, require_float=True)
        site = self._site(attribute_to_neuron_input)
        return self._overridden_grads(call, neuron_objective(self.model, site, neuron_selector))


class NeuronGuidedBackprop(_NeuronReLUOverride):
    """Guided Backpropagation of one hidden neuron to the inputs (Springenberg et al., 2014,
    https://arxiv.org/abs/1412.6806).

    Example:
        >>> import torch
        >>> from perspicio.attr import NeuronGuidedBackprop
        >>> from perspicio.testing import ConvNet
        >>> model = ConvNet()
        >>> NeuronGuidedBackprop(model, model.conv2).attribute(torch.rand(2, 1, 8, 8), (3, 4, 4)).shape
        torch.Size([2, 1, 8, 8])
    """

    _rule = GuidedReLURule()


class NeuronDeconvolution(_NeuronReLUOverride):
    """Deconvolution of one hidden neuron to the inputs (Zeiler & Fergus, 2014,
    https://arxiv.org/abs/1311.2901).

    Example:
        >>> import torch
        >>> from perspicio.attr import NeuronDeconvolution
        >>> from perspicio.testing import ConvNet
        >>> model = ConvNet()
        >>> NeuronDeconvolution(model, model.fc1).attribute(torch.rand(2, 1, 8, 8), 7).shape
        torch.Size([2, 1, 8, 8])
    """

    _rule = DeconvReLURule()
