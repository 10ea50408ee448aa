"""DeepLift and DeepLiftShap at a layer (Layer*) and for a hidden neuron (Neuron*).

The DeepLift engine (:func:`~perspicio.propagation.deep_lift.deeplift_at`) runs on a layer
site with the target objective, or on the inputs with a neuron objective.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from perspicio._core.attribution import (
    GradientAttribution,
    LayerAttribution,
    NeuronAttribution,
    check_single_layer,
    sum_rows,
)
from perspicio._core.call import Call, TensorOrTensors, Tensors, build_call, normalize_distribution
from perspicio._core.forward import NeuronSelector, check_neuron_selector
from perspicio._core.sites import InputSite, neuron_objective, target_objective
from perspicio.propagation.deep_lift import (
    DeepLift,
    check_model,
    combine,
    deeplift_at,
    mean_over_baselines,
    shap_rows,
)


class LayerDeepLift(LayerAttribution, DeepLift):
    """DeepLift attributions to the units of a layer (Shrikumar et al., 2017,
    https://arxiv.org/abs/1704.02685).

    The DeepLift multipliers of the target output w.r.t. the layer's values, times the
    difference of those values at the inputs and at the baselines. A layer called several
    times in one forward pass is attributed at its last call.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerDeepLift
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> attr, delta = LayerDeepLift(model, model.relu1).attribute(
        ...     torch.randn(3, 6), target=1, return_convergence_delta=True)
        >>> attr.shape, bool(delta.abs().max() < 1e-4)
        (torch.Size([3, 8]), True)
    """

    def __init__(self, model: nn.Module, layer: nn.Module, multiply_by_inputs: bool = True) -> None:
        check_single_layer(layer, type(self).__name__)
        DeepLift.__init__(self, model, multiply_by_inputs)
        self._bind_layer(model, layer, None)

    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTensors,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
        custom_attribution_func: Callable[..., Any] | None = None,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """DeepLift attributions of the target output to the layer's output (or input).

        Args:
            baselines: the reference input (default zeros).
            attribute_to_layer_input: attribute to the layer's inputs instead of its output.
            custom_attribution_func: ``f(multipliers[, layer values[, layer reference
                values]])`` returning the attributions.
            grad_kwargs: passed to ``torch.autograd.grad``.
        """
        call = build_call(
            inputs,
            target,
            additional_forward_args,
            baselines,
            use_baselines=True,
            require_float=True,
        )
        return self._layer_deeplift(
            call, call.expanded_baselines(), return_convergence_delta, attribute_to_layer_input,
            custom_attribution_func, grad_kwargs,
        )  # fmt: skip

    def _layer_deeplift(
        self,
        call: Call,
        refs: Tensors,
        with_delta: bool,
        to_input: bool,
        custom: Callable[..., Any] | None,
        grad_kwargs: dict[str, Any] | None = None,
        n_examples: int | None = None,
    ) -> Any:
        """DeepLift at the layer for every row; rows are averaged in groups of
        ``call.batch_size // n_examples`` (baselines of one example) when ``n_examples`` is set."""
        site = self._site(to_input)
        objective = target_objective(self.model)
        mult, at_x, at_ref, f_x, f_ref = deeplift_at(
            self.model, site, objective, call, refs, self.eps, grad_kwargs
        )
        attrs = self._combine(mult, at_x, at_ref, custom)
        result = self._restore(
            [attrs if n_examples is None else mean_over_baselines(attrs, n_examples)]
        )
        if not with_delta:
            return result
        return result, sum_rows(attrs) - (f_x - f_ref).to(attrs[0].dtype)


class LayerDeepLiftShap(LayerDeepLift):
    """LayerDeepLift averaged over a distribution of baselines (Lundberg & Lee, 2017,
    https://arxiv.org/abs/1705.07874).

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerDeepLiftShap
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> LayerDeepLiftShap(model, model.fc2).attribute(
        ...     torch.randn(3, 6), baselines=torch.randn(4, 6), target=0).shape
        torch.Size([3, 8])
    """

    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTensors,
        baselines: Any,
        target: Any = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
        custom_attribution_func: Callable[..., Any] | None = None,
    ) -> Any:
        """Mean LayerDeepLift attribution over every baseline in ``baselines`` (``(B, ...)``).

        The convergence delta has one value per (example, baseline) pair, example-major.
        """
        call = build_call(inputs, target, additional_forward_args, require_float=True)
        rows, refs = shap_rows(call, normalize_distribution(baselines, call.inputs))
        return self._layer_deeplift(
            rows, refs, return_convergence_delta, attribute_to_layer_input,
            custom_attribution_func, n_examples=call.batch_size,
        )  # fmt: skip


class NeuronDeepLift(NeuronAttribution, GradientAttribution):
    """DeepLift attributions of one hidden neuron to the inputs (Shrikumar et al., 2017,
    https://arxiv.org/abs/1704.02685): :class:`DeepLift` with the neuron as the objective.

    Example:
        >>> import torch
        >>> from perspicio.attr import NeuronDeepLift
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> NeuronDeepLift(model, model.relu2).attribute(torch.randn(3, 6), 5).shape
        torch.Size([3, 6])
    """

    def __init__(self, model: nn.Module, layer: nn.Module, multiply_by_inputs: bool = True) -> None:
        check_model(model, type(self).__name__)
        NeuronAttribution.__init__(self, model, layer)
        self.model = model
        self.eps = 1e-10
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self,
        inputs: TensorOrTensors,
        neuron_selector: NeuronSelector,
        baselines: Any = None,
        additional_forward_args: Any = None,
        attribute_to_neuron_input: bool = False,
        custom_attribution_func: Callable[..., Any] | None = None,
    ) -> TensorOrTensors:
        """DeepLift attributions of the selected neuron to the inputs.

        Args:
            neuron_selector: an int or a tuple of ints and slices indexing the layer's output
                after the batch dimension, or a callable mapping the layer's output to one
                value per example.
            baselines: the reference input (default zeros).
            attribute_to_neuron_input: select the neuron from the layer's input.
            custom_attribution_func: ``f(multipliers[, inputs[, baselines]])``.
        """
        check_neuron_selector(neuron_selector)
        call = build_call(
            inputs, None, additional_forward_args, baselines, use_baselines=True, require_float=True
        )
        refs = call.expanded_baselines()
        return call.restore(
            self._neuron_deeplift(
                call, refs, neuron_selector, attribute_to_neuron_input, custom_attribution_func
            )
        )

    def _neuron_deeplift(
        self,
        call: Call,
        refs: Tensors,
        selector: NeuronSelector,
        to_input: bool,
        custom: Callable[..., Any] | None,
    ) -> Tensors:
        objective = neuron_objective(self.model, self._site(to_input), selector)
        mult, _, _, _, _ = deeplift_at(self.model, InputSite(), objective, call, refs, self.eps)
        return combine(mult, call.inputs, refs, custom, self._multiply_by_inputs)


class NeuronDeepLiftShap(NeuronDeepLift):
    """NeuronDeepLift averaged over a distribution of baselines (Lundberg & Lee, 2017,
    https://arxiv.org/abs/1705.07874).

    Example:
        >>> import torch
        >>> from perspicio.attr import NeuronDeepLiftShap
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> NeuronDeepLiftShap(model, model.fc2).attribute(
        ...     torch.randn(3, 6), 2, baselines=torch.randn(4, 6)).shape
        torch.Size([3, 6])
    """

    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTensors,
        neuron_selector: NeuronSelector,
        baselines: Any,
        additional_forward_args: Any = None,
        attribute_to_neuron_input: bool = False,
        custom_attribution_func: Callable[..., Any] | None = None,
    ) -> TensorOrTensors:
        """Mean NeuronDeepLift attribution over every baseline in ``baselines`` (``(B, ...)``)."""
        check_neuron_selector(neuron_selector)
        call = build_call(inputs, None, additional_forward_args, require_float=True)
        rows, refs = shap_rows(call, normalize_distribution(baselines, call.inputs))
        attrs = self._neuron_deeplift(
            rows, refs, neuron_selector, attribute_to_neuron_input, custom_attribution_func
        )
        return call.restore(mean_over_baselines(attrs, call.batch_size))
