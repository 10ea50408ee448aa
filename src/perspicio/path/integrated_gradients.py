"""Integrated Gradients on any site: the inputs, a layer, or the inputs with a neuron objective."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.attribution import (
    GradientAttribution,
    LayerAttribution,
    NeuronAttribution,
    sum_rows,
)
from perspicio._core.call import Call, TensorOrTensors, Tensors, build_call
from perspicio._core.forward import NeuronSelector, check_neuron_selector, scores
from perspicio._core.sites import InputSite, Objective, Site, neuron_objective, target_objective
from perspicio._core.validate import ArgumentError
from perspicio._core.wrapped import LayerNoise
from perspicio.path.integral import check_path_args, path_integral


def integrate(
    site: Site,
    objective: Objective,
    call: Call,
    starts: Tensors,
    ends: Tensors,
    n_steps: int,
    method: str,
    internal_batch_size: int | None,
    multiply_by_inputs: bool,
    grad_kwargs: dict[str, Any] | None = None,
) -> Tensors:
    """Integrated gradients at ``site`` along the straight path from ``starts`` to ``ends``."""

    def grad_fn(sub: Call, points: Tensors) -> Tensors:
        return site.grads(objective, sub, at=points, grad_kwargs=grad_kwargs)[0]

    totals = path_integral(grad_fn, call, starts, ends, n_steps, method, internal_batch_size)
    if not multiply_by_inputs:
        return totals
    return tuple(t * (e - s) for t, s, e in zip(totals, starts, ends))


def completeness_delta(
    forward_func: Any,
    call: Call,
    attributions: Tensors,
    starts: Tensors,
    end_scores: Tensor | None = None,
) -> Tensor:
    """``Σ attributions − (f(inputs) − f(starts))`` per example (``end_scores`` in place of
    ``f(inputs)`` when given)."""
    with torch.no_grad():
        f_end = scores(forward_func, call) if end_scores is None else end_scores
        f_start = scores(forward_func, call, starts)
    total = sum_rows(attributions)
    return total - (f_end - f_start).reshape(total.shape).to(total.dtype)


class IntegratedGradients(GradientAttribution):
    """Integrated Gradients (Sundararajan et al., 2017, https://arxiv.org/abs/1703.01365).

    The attribution of each input feature is ``(x − x') · ∫₀¹ ∂f(x' + α(x − x'))/∂x dα``,
    approximated with ``n_steps`` points of the chosen quadrature ``method``. With
    ``multiply_by_inputs=False`` the factor ``(x − x')`` is left out (local attribution).

    Example:
        >>> import torch
        >>> from perspicio.attr import IntegratedGradients
        >>> from perspicio.testing import ReLUMLP
        >>> ig = IntegratedGradients(ReLUMLP())
        >>> attr, delta = ig.attribute(torch.randn(2, 6), target=0, return_convergence_delta=True)
        >>> bool(delta.abs().max() < 1e-3)
        True
    """

    def __init__(self, forward_func: Any, multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self,
        inputs: TensorOrTensors,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
    ) -> TensorOrTensors | tuple[TensorOrTensors, Tensor]:
        """Integrated gradients of the target output w.r.t. the inputs.

        Args:
            n_steps: number of points on the path.
            method: ``riemann_left``, ``riemann_right``, ``riemann_middle``,
                ``riemann_trapezoid`` or ``gausslegendre``.
            internal_batch_size: rows per forward/backward pass (at least one step of the
                whole batch); ``None`` evaluates all steps in one pass.
        """
        check_path_args(n_steps, method, internal_batch_size)
        call = build_call(
            inputs,
            target,
            additional_forward_args,
            baselines,
            use_baselines=True,
            require_float=True,
        )
        starts = call.expanded_baselines()
        objective = target_objective(self.forward_func)
        attrs = integrate(
            InputSite(), objective, call, starts, call.inputs, n_steps, method,
            internal_batch_size, self._multiply_by_inputs,
        )  # fmt: skip
        result = call.restore(attrs)
        if not return_convergence_delta:
            return result
        return result, completeness_delta(self.forward_func, call, attrs, starts)

    def has_convergence_delta(self) -> bool:
        return True


def input_baselines(call: Call) -> Tensors:
    """The call's baselines at full shape, in the dtype of integer inputs (token ids)."""
    return tuple(
        b if x.is_floating_point() else b.to(x.dtype)
        for b, x in zip(call.expanded_baselines(), call.inputs)
    )


def check_same_shapes(starts: Tensors, ends: Tensors, what: str) -> None:
    for s, e in zip(starts, ends):
        if s.shape != e.shape:
            raise ArgumentError(
                f"the {what} has shape {tuple(s.shape)} for the baselines but "
                f"{tuple(e.shape)} for the inputs; give baselines of the inputs' shape"
            )


class LayerIntegratedGradients(LayerAttribution, GradientAttribution, LayerNoise):
    """Integrated Gradients in the space of a layer (Sundararajan et al., 2017,
    https://arxiv.org/abs/1703.01365).

    The path runs from the layer's values at the baselines to its values at the inputs, and
    the layer's values are replaced by the path points while the rest of the model runs as
    usual. This is the standard way to explain text models: attribute to the embedding layer
    of a model fed with token ids. ``layer`` may be a list of layers, attributed together
    (each should not be computed only from another one of the list). A layer called several
    times in one forward pass is attributed at its last call; the earlier calls run unchanged.
    Wrapped in :class:`~perspicio.attr.NoiseTunnel` with integer inputs, the noise is added to
    the layer's values at the inputs.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerIntegratedGradients
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> lig = LayerIntegratedGradients(model, model.fc2)
        >>> attr, delta = lig.attribute(torch.randn(2, 6), target=0, return_convergence_delta=True)
        >>> attr.shape, bool(delta.abs().max() < 1e-3)
        (torch.Size([2, 8]), True)
    """

    def __init__(
        self,
        forward_func: Any,
        layer: Any,
        device_ids: list[int] | None = None,
        multiply_by_inputs: bool = True,
    ) -> None:
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self,
        inputs: TensorOrTensors,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """Integrated gradients of the target output w.r.t. the layer's output (or input).

        Args:
            baselines: reference inputs (for token ids: reference ids, such as padding).
            n_steps: number of points on the path.
            method: the quadrature, as in :class:`IntegratedGradients`.
            internal_batch_size: rows per forward/backward pass (``None``: all steps at once).
            attribute_to_layer_input: attribute to the layer's inputs instead of its output.
            grad_kwargs: passed to ``torch.autograd.grad``.
        """
        check_path_args(n_steps, method, internal_batch_size)
        call = build_call(inputs, target, additional_forward_args, baselines, use_baselines=True)
        base = input_baselines(call)
        site = self._site(attribute_to_layer_input)
        probe = site.probe(self.forward_func, call)
        bound = site.bind(probe)
        ends = self.noisy(probe.values)
        starts = site.values(self.forward_func, call.with_inputs(base))
        check_same_shapes(starts, ends, "layer's value")
        objective = target_objective(self.forward_func)
        attrs = integrate(
            bound, objective, call, starts, ends, n_steps, method, internal_batch_size,
            self._multiply_by_inputs, grad_kwargs,
        )  # fmt: skip
        result = self._restore(probe.split(attrs))
        if not return_convergence_delta:
            return result
        end_scores = None
        if ends is not probe.values:  # NoiseTunnel's noise: the end point is the noisy layer
            with torch.no_grad(), bound.replaced(ends):
                end_scores = objective(call, call.inputs)
        return result, completeness_delta(self.forward_func, call, attrs, base, end_scores)

    def has_convergence_delta(self) -> bool:
        return True


class NeuronIntegratedGradients(NeuronAttribution, GradientAttribution):
    """Integrated Gradients of one hidden neuron w.r.t. the inputs (Sundararajan et al., 2017,
    https://arxiv.org/abs/1703.01365): :class:`IntegratedGradients` with the neuron's value
    as the objective.

    Example:
        >>> import torch
        >>> from perspicio.attr import NeuronIntegratedGradients
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> nig = NeuronIntegratedGradients(model, model.fc1)
        >>> nig.attribute(torch.randn(2, 6), neuron_selector=3).shape
        torch.Size([2, 6])
    """

    def __init__(
        self,
        forward_func: Any,
        layer: nn.Module,
        device_ids: list[int] | None = None,
        multiply_by_inputs: bool = True,
    ) -> None:
        NeuronAttribution.__init__(self, forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self,
        inputs: TensorOrTensors,
        neuron_selector: NeuronSelector,
        baselines: Any = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        attribute_to_neuron_input: bool = False,
    ) -> TensorOrTensors:
        """Integrated gradients of the selected neuron w.r.t. the inputs.

        Args:
            neuron_selector: an int or a tuple of ints and slices indexing the layer's output
                after the batch dimension (slices select a group whose values are summed), or
                a callable mapping the layer's output to one value per example.
            attribute_to_neuron_input: select the neuron from the layer's input.
        """
        check_neuron_selector(neuron_selector)
        check_path_args(n_steps, method, internal_batch_size)
        call = build_call(
            inputs, None, additional_forward_args, baselines, use_baselines=True, require_float=True
        )
        site = self._site(attribute_to_neuron_input)
        objective = neuron_objective(self.forward_func, site, neuron_selector)
        attrs = integrate(
            InputSite(), objective, call, call.expanded_baselines(), call.inputs, n_steps, method,
            internal_batch_size, self._multiply_by_inputs,
        )  # fmt: skip
        return call.restore(attrs)
