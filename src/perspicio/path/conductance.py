"""Conductance and internal influence: gradients at a layer along the path in input space."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.attribution import (
    GradientAttribution,
    LayerAttribution,
    NeuronAttribution,
    check_single_layer,
)
from perspicio._core.call import Call, TensorOrTensors, Tensors, build_call
from perspicio._core.forward import NeuronSelector, check_neuron_selector, scores, select_neuron
from perspicio._core.hooks import grad
from perspicio._core.sites import (
    InputSite,
    LayerSite,
    Objective,
    target_objective,
)
from perspicio.path.integral import approximation, check_path_args, path_chunks, path_integral
from perspicio.path.integrated_gradients import completeness_delta, integrate


def conductance(
    site: LayerSite,
    objective: Objective,
    call: Call,
    starts: Tensors,
    n_steps: int,
    method: str,
    internal_batch_size: int | None,
    grad_kwargs: dict[str, Any] | None = None,
) -> Tensors:
    """``Σₖ ∂F/∂y(pₖ) · (y(pₖ₊₁) − y(pₖ))`` over ``n_steps + 1`` points ``pₖ`` of the input path.

    ``y`` is the site's value. The points are ``method``'s nodes for ``n_steps + 1`` points
    (only the nodes are used, not the weights). Each point is evaluated once: a chunk carries
    its last point's gradient and value over to the next chunk.
    """
    alphas, _ = approximation(method, n_steps + 1)
    n = call.batch_size
    totals: list[Tensor] = []
    last: tuple[list[Tensor], list[Tensor]] | None = None  # previous chunk's last point
    for a, b, sub, points in path_chunks(call, starts, call.inputs, alphas, internal_batch_size):
        grads, values, _ = site.grads_and_values(objective, sub.with_inputs(points), grad_kwargs)
        g = [t.reshape(b - a, n, *t.shape[1:]) for t in grads]  # (steps, N, ...)
        v = [t.reshape(b - a, n, *t.shape[1:]) for t in values]
        if last is not None:
            g = [torch.cat([p.unsqueeze(0), t]) for p, t in zip(last[0], g)]
            v = [torch.cat([p.unsqueeze(0), t]) for p, t in zip(last[1], v)]
        parts = [(gi[:-1] * (vi[1:] - vi[:-1])).sum(0) for gi, vi in zip(g, v)]
        totals = parts if not totals else [t + p for t, p in zip(totals, parts)]
        last = ([t[-1] for t in g], [t[-1] for t in v])
    return tuple(totals)


def neuron_conductance_objective(
    forward_func: Callable[..., Any],
    site: LayerSite,
    selector: NeuronSelector,
    grad_kwargs: dict[str, Any] | None = None,
) -> Objective:
    """The neuron's value weighted by ``∂F/∂neuron`` (held constant).

    Its gradient w.r.t. the inputs is ``∂F/∂neuron · ∂neuron/∂x``, the integrand of neuron
    conductance. As in Captum, the selector is applied to the layer's gradient as well as to
    its value, so a group of neurons gets the summed gradient times the summed value.
    """
    layer = site.layers[0]
    kwargs = {**(grad_kwargs or {}), "retain_graph": True}

    def objective(call: Call, inputs: Tensors) -> Tensor:
        with site.capture() as rec:
            out = scores(forward_func, call, inputs)
        act, is_tuple = rec[layer], rec.is_tuple[layer]
        weight = select_neuron(grad(out, act, kwargs), selector, is_tuple).detach()
        return weight * select_neuron(act, selector, is_tuple)

    return objective


class LayerConductance(LayerAttribution, GradientAttribution):
    """Conductance of each unit of a layer (Dhamdhere et al., 2018,
    https://arxiv.org/abs/1805.12233).

    The flow of the integrated gradient through each unit ``y``:
    ``∫ ∂F/∂y · dy/dα dα`` along the straight path from the baselines to the inputs,
    approximated with the finite differences of ``y`` between ``n_steps + 1`` consecutive
    points. The units' conductances sum to approximately ``F(inputs) − F(baselines)``; with
    ``method='riemann_trapezoid'`` (whose points include both ends of the path) the error
    vanishes as ``n_steps`` grows.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerConductance
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> lc = LayerConductance(model, model.fc2)
        >>> attr, delta = lc.attribute(torch.randn(2, 6), target=0, n_steps=200,
        ...                            method="riemann_trapezoid", return_convergence_delta=True)
        >>> attr.shape, bool(delta.abs().max() < 1e-2)
        (torch.Size([2, 8]), True)
    """

    def __init__(
        self, forward_func: Any, layer: nn.Module, device_ids: list[int] | None = None
    ) -> None:
        check_single_layer(layer, "LayerConductance")
        LayerAttribution.__init__(self, forward_func, layer, device_ids)

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
        """Conductance of the layer's units for the target output.

        Args:
            n_steps: number of path intervals (the layer is evaluated at ``n_steps + 1``
                points).
            method: the quadrature whose nodes are the path points.
            internal_batch_size: rows per forward/backward pass (``None``: all at once).
            attribute_to_layer_input: attribute to the layer's inputs instead of its output.
            grad_kwargs: passed to ``torch.autograd.grad``.
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
        attrs = conductance(
            self._site(attribute_to_layer_input), target_objective(self.forward_func), call,
            starts, n_steps, method, internal_batch_size, grad_kwargs,
        )  # fmt: skip
        result = self._restore([attrs])
        if not return_convergence_delta:
            return result
        return result, completeness_delta(self.forward_func, call, attrs, starts)

    def has_convergence_delta(self) -> bool:
        return True

    @property
    def multiplies_by_inputs(self) -> bool:
        return True


class InternalInfluence(LayerAttribution, GradientAttribution):
    """Internal influence (Leino et al., 2018, https://arxiv.org/abs/1802.03788).

    The gradient of the target output w.r.t. the layer, integrated along the straight path
    from the baselines to the inputs (in input space), without multiplying by any difference.

    Example:
        >>> import torch
        >>> from perspicio.attr import InternalInfluence
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> InternalInfluence(model, model.fc1).attribute(torch.randn(2, 6), target=1).shape
        torch.Size([2, 8])
    """

    def __init__(
        self, forward_func: Any, layer: nn.Module, device_ids: list[int] | None = None
    ) -> None:
        check_single_layer(layer, "InternalInfluence")
        LayerAttribution.__init__(self, forward_func, layer, device_ids)

    def attribute(
        self,
        inputs: TensorOrTensors,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """Layer gradients of the target output, integrated along the input path.

        Args:
            n_steps: number of points on the path.
            method: the quadrature, as in :class:`~perspicio.attr.IntegratedGradients`.
            internal_batch_size: rows per forward/backward pass (``None``: all at once).
            attribute_to_layer_input: attribute to the layer's inputs instead of its output.
            grad_kwargs: passed to ``torch.autograd.grad``.
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
        site = self._site(attribute_to_layer_input)
        objective = target_objective(self.forward_func)

        def grad_fn(sub: Call, points: Tensors) -> Tensors:
            return site.grads(objective, sub.with_inputs(points), grad_kwargs=grad_kwargs)[0]

        attrs = path_integral(
            grad_fn, call, call.expanded_baselines(), call.inputs, n_steps, method,
            internal_batch_size,
        )  # fmt: skip
        return self._restore([attrs])


class NeuronConductance(NeuronAttribution, GradientAttribution):
    """Conductance of one hidden neuron, per input feature (Dhamdhere et al., 2018,
    https://arxiv.org/abs/1805.12233).

    ``(x − x') · ∫ ∂F/∂n · ∂n/∂x dα`` along the straight input path: the part of the target
    output's integrated gradient that flows through neuron ``n``. Summed over the input
    features it approaches that neuron's :class:`LayerConductance` as ``n_steps`` grows.

    Example:
        >>> import torch
        >>> from perspicio.attr import NeuronConductance
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> nc = NeuronConductance(model, model.fc2)
        >>> nc.attribute(torch.randn(2, 6), neuron_selector=4, target=0).shape
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
        target: Any = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "riemann_trapezoid",
        internal_batch_size: int | None = None,
        attribute_to_neuron_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> TensorOrTensors:
        """Conductance through the selected neuron, per input feature.

        Args:
            neuron_selector: an int or a tuple of ints and slices indexing the layer's output
                after the batch dimension, or a callable mapping the layer's output to one
                value per example (it should only select: it is applied to the layer's
                gradient too).
            n_steps: number of points on the path.
            method: the quadrature (Captum's default here is ``riemann_trapezoid``).
            internal_batch_size: rows per forward/backward pass (``None``: all at once).
            attribute_to_neuron_input: select the neuron from the layer's input.
            grad_kwargs: passed to ``torch.autograd.grad`` for the layer's gradient.
        """
        check_neuron_selector(neuron_selector)
        check_path_args(n_steps, method, internal_batch_size)
        call = build_call(
            inputs,
            target,
            additional_forward_args,
            baselines,
            use_baselines=True,
            require_float=True,
        )
        objective = neuron_conductance_objective(
            self.forward_func, self._site(attribute_to_neuron_input), neuron_selector, grad_kwargs
        )
        attrs = integrate(
            InputSite(), objective, call, call.expanded_baselines(), call.inputs, n_steps, method,
            internal_batch_size, self._multiply_by_inputs,
        )  # fmt: skip
        return call.restore(attrs)
