"""Layer activations, gradient × activation, and neuron gradients."""

from __future__ import annotations

from typing import Any

from torch import nn

from perspicio._core.attribution import GradientAttribution, LayerAttribution, NeuronAttribution
from perspicio._core.call import TensorOrTensors, build_call
from perspicio._core.forward import NeuronSelector, check_neuron_selector
from perspicio._core.sites import InputSite, neuron_objective, target_objective


class LayerActivation(LayerAttribution):
    """The values a layer computes (or receives) for the inputs.

    ``layer`` may be a list of layers (a list of results comes back). A layer called several
    times in one forward pass gives the values of its last call.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerActivation
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> LayerActivation(model, model.fc1).attribute(torch.randn(2, 6)).shape
        torch.Size([2, 8])
    """

    def attribute(
        self,
        inputs: TensorOrTensors,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
    ) -> Any:
        """The layer's output (or input) for ``inputs``, computed without gradients.

        Args:
            attribute_to_layer_input: return the layer's inputs instead of its output.
        """
        call = build_call(inputs, None, additional_forward_args)
        probe = self._site(attribute_to_layer_input).probe(self.forward_func, call)
        return self._restore(probe.split(probe.values))

    @property
    def multiplies_by_inputs(self) -> bool:
        return True


class LayerGradientXActivation(LayerAttribution, GradientAttribution):
    """Gradient × activation at a layer (Shrikumar et al., 2016, https://arxiv.org/abs/1605.01713).

    The gradient of the target output w.r.t. the layer's values, times those values (or the
    gradient alone with ``multiply_by_inputs=False``). ``layer`` may be a list of layers.
    With ``memory_efficient=True`` the activations and gradients are moved to the CPU as soon
    as they are computed, and the attributions are returned on the CPU.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerGradientXActivation
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> lgxa = LayerGradientXActivation(model, [model.fc1, model.fc2])
        >>> [a.shape for a in lgxa.attribute(torch.randn(2, 6), target=0)]
        [torch.Size([2, 8]), torch.Size([2, 8])]
    """

    def __init__(
        self,
        forward_func: Any,
        layer: Any,
        device_ids: list[int] | None = None,
        multiply_by_inputs: bool = True,
        memory_efficient: bool = False,
    ) -> None:
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs
        self._memory_efficient = memory_efficient

    def attribute(
        self,
        inputs: TensorOrTensors,
        target: Any = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """Gradient of the target output w.r.t. the layer, times the layer's values.

        Args:
            attribute_to_layer_input: attribute to the layer's inputs instead of its output.
            grad_kwargs: passed to ``torch.autograd.grad``.
        """
        call = build_call(inputs, target, additional_forward_args)
        site = self._site(attribute_to_layer_input)
        objective = target_objective(self.forward_func)
        grads, values, _ = site.grads_and_values_by_layer(objective, call, grad_kwargs)
        if self._memory_efficient:
            grads = [tuple(t.cpu() for t in g) for g in grads]
            values = [tuple(t.cpu() for t in v) for v in values]
        if not self._multiply_by_inputs:
            return self._restore(grads)
        return self._restore(
            [tuple(g * v for g, v in zip(gs, vs)) for gs, vs in zip(grads, values)]
        )


class NeuronGradient(NeuronAttribution, GradientAttribution):
    """The gradient of one hidden neuron (or a group of them) w.r.t. the inputs.

    Example:
        >>> import torch
        >>> from perspicio.attr import NeuronGradient
        >>> from perspicio.testing import ConvNet
        >>> model = ConvNet()
        >>> NeuronGradient(model, model.conv2).attribute(torch.rand(2, 1, 8, 8), (3, 4, 4)).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self, forward_func: Any, layer: nn.Module, device_ids: list[int] | None = None
    ) -> None:
        NeuronAttribution.__init__(self, forward_func, layer, device_ids)

    def attribute(
        self,
        inputs: TensorOrTensors,
        neuron_selector: NeuronSelector,
        additional_forward_args: Any = None,
        attribute_to_neuron_input: bool = False,
    ) -> TensorOrTensors:
        """Gradients of the selected neuron's value w.r.t. each input.

        Args:
            neuron_selector: an int or a tuple of ints and slices indexing the layer's output
                after the batch dimension (slices select a group whose values are summed), or
                a callable mapping the layer's output to one value per example.
            attribute_to_neuron_input: select the neuron from the layer's input.
        """
        check_neuron_selector(neuron_selector)
        call = build_call(inputs, None, additional_forward_args, require_float=True)
        site = self._site(attribute_to_neuron_input)
        grads, _ = InputSite().grads(
            neuron_objective(self.forward_func, site, neuron_selector), call
        )
        return call.restore(grads)
