"""Feature ablation and permutation of a layer's units, and feature ablation of a neuron.

Each is the primary perturbation method on another site or objective: the plans of
:mod:`~perspicio.perturbation.ablation` and :mod:`~perspicio.perturbation.permutation` run
on a layer's values through :func:`~perspicio._core.sweep.layer_evaluator`, or on the
inputs with a neuron objective in place of the target.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from perspicio._core.attribution import (
    LayerAttribution,
    NeuronAttribution,
    PerturbationAttribution,
    check_single_layer,
)
from perspicio._core.call import TensorOrTensors, Tensors, build_call, normalize_baselines
from perspicio._core.forward import NeuronSelector, check_neuron_selector
from perspicio._core.masks import FeatureGroups, MaskType
from perspicio._core.sites import neuron_objective
from perspicio._core.sweep import AUTO, check_per_eval, execute, layer_evaluator
from perspicio._core.validate import ArgumentError
from perspicio.perturbation.ablation import Ablation, ablate, spread_rows
from perspicio.perturbation.permutation import FeaturePermutation


class LayerFeatureAblation(LayerAttribution, PerturbationAttribution):
    """Feature ablation of a layer's units: each unit (or group of units, ``layer_mask``) is
    set to its baseline (``layer_baselines``, default 0) in the layer's output, and the change
    of the target output is its attribution.

    Many ablations share one forward pass; with the default ``perturbations_per_eval`` the
    number is chosen from a memory budget (results are the same for any value). A layer
    called several times in one forward pass is ablated at its last call.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerFeatureAblation
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> lfa = LayerFeatureAblation(model, model.relu1)
        >>> lfa.attribute(torch.randn(2, 6), target=0).shape
        torch.Size([2, 8])
    """

    def __init__(
        self, forward_func: Any, layer: nn.Module, device_ids: list[int] | None = None
    ) -> None:
        check_single_layer(layer, type(self).__name__)
        LayerAttribution.__init__(self, forward_func, layer, device_ids)

    def attribute(
        self,
        inputs: TensorOrTensors,
        layer_baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        layer_mask: MaskType = None,
        attribute_to_layer_input: bool = False,
        perturbations_per_eval: int = AUTO,
    ) -> Any:
        """Output change when each unit (group) of the layer is replaced by its baseline.

        Args:
            layer_baselines: a number or a tensor broadcastable to the layer's output (one
                per output tensor for a layer returning a tuple).
            layer_mask: integer group ids broadcastable to the layer's output; units with the
                same id are ablated together and share one attribution.
            attribute_to_layer_input: ablate the layer's inputs instead of its output.
            perturbations_per_eval: ablations per forward pass (default: from a memory budget).
        """
        check_per_eval(perturbations_per_eval)
        call = build_call(inputs, target, additional_forward_args)
        site = self._site(attribute_to_layer_input)
        probe = site.probe(self.forward_func, call)
        baselines = normalize_baselines(layer_baselines, probe.values, "layer_baselines")
        groups = FeatureGroups.build(layer_mask, probe.values, "layer_mask")
        evaluate = layer_evaluator(self.forward_func, call, site.bind(probe))
        attrs = ablate(
            evaluate, probe.values, baselines, groups, perturbations_per_eval, desc=self.get_name()
        )
        return self._restore([attrs])


class LayerFeaturePermutation(LayerAttribution, FeaturePermutation):
    """Permutation importance of a layer's units: each unit (or group, ``layer_mask``) is
    shuffled across the batch in the layer's output, and the change of the target output is
    its attribution (needs at least two examples).

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerFeaturePermutation
        >>> from perspicio.testing import ReLUMLP
        >>> _ = torch.manual_seed(0)
        >>> model = ReLUMLP()
        >>> LayerFeaturePermutation(model, model.fc1).attribute(torch.randn(4, 6), target=1).shape
        torch.Size([4, 8])
    """

    def __init__(
        self, forward_func: Any, layer: nn.Module, device_ids: list[int] | None = None
    ) -> None:
        check_single_layer(layer, type(self).__name__)
        FeaturePermutation.__init__(self, forward_func)
        self._bind_layer(forward_func, layer, device_ids)

    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTensors,
        target: Any = None,
        additional_forward_args: Any = None,
        layer_mask: MaskType = None,
        perturbations_per_eval: int = AUTO,
    ) -> Any:
        """Output change when each unit (group) of the layer is shuffled across the batch.

        Args:
            layer_mask: integer group ids broadcastable to the layer's output.
            perturbations_per_eval: permutations per forward pass (default: from a memory
                budget; results do not depend on it).
        """
        check_per_eval(perturbations_per_eval)
        call = build_call(inputs, target, additional_forward_args)
        if call.batch_size < 2:
            raise ArgumentError(
                "LayerFeaturePermutation shuffles units across the batch, which needs at least "
                f"2 examples; got a batch of {call.batch_size}"
            )
        site = self._site()
        probe = site.probe(self.forward_func, call)
        values = probe.values
        groups = FeatureGroups.build(layer_mask, values, "layer_mask")
        plan = Ablation(values, groups, self._replacement(values, groups))

        def finish(base: Tensor) -> Any:
            return self._restore([spread_rows(groups, plan.result(base), base)])

        evaluate = layer_evaluator(self.forward_func, call, site.bind(probe))
        return execute(plan, evaluate, values, finish, perturbations_per_eval, desc=self.get_name())

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("attribute_future is not implemented for LayerFeaturePermutation")


class NeuronFeatureAblation(NeuronAttribution, PerturbationAttribution):
    """Feature ablation of one hidden neuron: each input feature (or group, ``feature_mask``)
    is set to its baseline and the change of the neuron's value is its attribution.

    Example:
        >>> import torch
        >>> from perspicio.attr import NeuronFeatureAblation
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> NeuronFeatureAblation(model, model.fc2).attribute(torch.randn(2, 6), 3).shape
        torch.Size([2, 6])
    """

    def __init__(
        self, forward_func: Any, layer: nn.Module, device_ids: list[int] | None = None
    ) -> None:
        NeuronAttribution.__init__(self, forward_func, layer, device_ids)

    def attribute(
        self,
        inputs: TensorOrTensors,
        neuron_selector: NeuronSelector,
        baselines: Any = None,
        additional_forward_args: Any = None,
        feature_mask: MaskType = None,
        attribute_to_neuron_input: bool = False,
        perturbations_per_eval: int = AUTO,
    ) -> TensorOrTensors:
        """Change of the selected neuron when each input feature (group) is ablated.

        Args:
            neuron_selector: an int or a tuple of ints and slices indexing the layer's output
                after the batch dimension, or a callable mapping the layer's output to one
                value per example.
            baselines: the values ablated features take (default 0), as in FeatureAblation.
            feature_mask: integer group ids, one mask per input, as in FeatureAblation.
            attribute_to_neuron_input: select the neuron from the layer's input.
            perturbations_per_eval: ablations per forward pass (default: from a memory budget).
        """
        check_neuron_selector(neuron_selector)
        check_per_eval(perturbations_per_eval)
        call = build_call(inputs, None, additional_forward_args, baselines, use_baselines=True)
        groups = FeatureGroups.build(feature_mask, call.inputs)
        site = self._site(attribute_to_neuron_input)
        neuron = neuron_objective(self.forward_func, site, neuron_selector)
        assert call.baselines is not None

        def evaluate(values: Tensors, k: int) -> Tensor:
            return neuron(call.repeat(k), values)

        attrs = ablate(
            evaluate, call.inputs, call.baselines, groups, perturbations_per_eval,
            desc=self.get_name(),
        )  # fmt: skip
        return call.restore(attrs)
