"""DeepLift (Rescale rule) and DeepLiftShap, and the DeepLift engine for any site and objective."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.attribution import GradientAttribution, sum_rows
from perspicio._core.call import Call, TensorOrTensors, Tensors, build_call, normalize_distribution
from perspicio._core.forward import forward_call
from perspicio._core.sites import InputSite, Objective, Site, target_objective
from perspicio._core.validate import ArgumentError
from perspicio.propagation.composite import Composite
from perspicio.propagation.rules import deeplift_rules


def call_custom_attribution_func(
    func: Callable[..., Any], multipliers: Tensors, inputs: Tensors, baselines: Tensors
) -> Tensors:
    """Call ``func`` with as many of ``(multipliers, inputs, baselines)`` as it takes."""
    n = len(inspect.signature(func).parameters)
    if n not in (1, 2, 3):
        raise ArgumentError(
            "custom_attribution_func must take 1, 2 or 3 arguments (multipliers, inputs, "
            f"baselines), it takes {n}"
        )
    out = func(*(multipliers, inputs, baselines)[:n])
    return out if isinstance(out, tuple) else (out,)


def check_model(model: Any, who: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"{who} needs a torch.nn.Module (its hooks go on the model's modules), got "
            f"{type(model).__name__}"
        )


def deeplift_multipliers(
    model: nn.Module,
    call: Call,
    refs: Tensors,
    eps: float,
    score_fn: Callable[[Any, Call], Tensor] | None = None,
) -> tuple[Tensors, Tensor, Tensor]:
    """DeepLift multipliers w.r.t. the inputs, with ``f(x)`` and ``f(ref)`` per example."""
    objective = target_objective(model)
    if score_fn is not None:
        objective = lambda c, inputs: score_fn(forward_call(model, c, inputs), c)  # noqa: E731
    mult, _, _, f_x, f_ref = deeplift_at(model, InputSite(), objective, call, refs, eps)
    return mult, f_x, f_ref


def deeplift_at(
    model: nn.Module,
    site: Site,
    objective: Objective,
    call: Call,
    refs: Tensors,
    eps: float,
    grad_kwargs: dict[str, Any] | None = None,
) -> tuple[Tensors, Tensors, Tensors, Tensor, Tensor]:
    """DeepLift multipliers of ``objective`` at ``site``.

    The inputs and their references run through the model together (2N rows) so that each
    non-linearity sees both; the Rescale rules then replace its gradient by ``Δy / Δx``.
    Returns the multipliers, the site's values at the inputs and at the references, and the
    objective at the inputs and at the references.
    """
    n = call.batch_size
    both = call.repeat(2).with_inputs(
        tuple(torch.cat([x, r.expand_as(x)]) for x, r in zip(call.inputs, refs))
    )
    seen: list[Tensor] = []

    def first_half(c: Call, inputs: Tensors) -> Tensor:
        out = objective(c, inputs)
        if out.dim() == 0:
            raise ArgumentError(
                "DeepLift needs one output per example, the model returned a scalar"
            )
        seen.append(out.detach())
        return out[:n]

    with torch.enable_grad(), Composite(deeplift_rules(eps)).context(model):
        grads, values, _ = site.grads_and_values(first_half, both, grad_kwargs)
    out = seen[-1]
    return (
        tuple(g[:n] for g in grads),
        tuple(v[:n] for v in values),
        tuple(v[n:] for v in values),
        out[:n],
        out[n:],
    )


def combine(
    mult: Tensors,
    inputs: Tensors,
    refs: Tensors,
    custom: Callable[..., Any] | None,
    multiply_by_inputs: bool,
) -> Tensors:
    """Attributions from multipliers: ``custom_attribution_func``, or ``m × (x − ref)``."""
    if custom is not None:
        return call_custom_attribution_func(custom, mult, inputs, refs)
    if not multiply_by_inputs:
        return mult
    return tuple(m * (x - r) for m, x, r in zip(mult, inputs, refs))


def shap_rows(call: Call, dist: Tensors) -> tuple[Call, Tensors]:
    """Every example paired with every baseline: row ``i * B + j`` is example i, baseline j."""
    n, b = call.batch_size, dist[0].shape[0]
    refs = tuple(d.repeat(n, *([1] * (d.dim() - 1))) for d in dist)
    return call.repeat(b, interleave=True), refs


def mean_over_baselines(attrs: Tensors, n: int) -> Tensors:
    return tuple(a.reshape(n, len(a) // n if n else 0, *a.shape[1:]).mean(1) for a in attrs)


class DeepLift(GradientAttribution):
    """DeepLIFT with the Rescale rule (Shrikumar et al., 2017, https://arxiv.org/abs/1704.02685).

    Attributions are multipliers ``Δf/Δx`` times ``x − x_ref``, where every non-linearity
    (ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus, Softmax, MaxPool1d/2d/3d modules) passes
    back its secant slope instead of its gradient. Modules may be reused (as the ReLU of a
    torchvision ResNet block is): each call is handled on its own. Functional calls such as
    ``torch.relu`` are invisible to module hooks and keep their ordinary gradient.

    Example:
        >>> import torch
        >>> from perspicio.attr import DeepLift
        >>> from perspicio.testing import ReLUMLP
        >>> attr, delta = DeepLift(ReLUMLP()).attribute(
        ...     torch.randn(3, 6), target=1, return_convergence_delta=True)
        >>> bool(delta.abs().max() < 1e-4)
        True
    """

    def __init__(
        self, model: nn.Module, multiply_by_inputs: bool = True, eps: float = 1e-10
    ) -> None:
        check_model(model, "DeepLift")
        super().__init__(model)
        self.model = model
        self.eps = eps
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self,
        inputs: TensorOrTensors,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        custom_attribution_func: Callable[..., Any] | None = None,
    ) -> TensorOrTensors | tuple[TensorOrTensors, Tensor]:
        """DeepLift attributions of the target output to the inputs.

        Args:
            baselines: the reference input (default zeros).
            custom_attribution_func: ``f(multipliers[, inputs[, baselines]])`` returning the
                attributions, instead of ``multipliers × (inputs − baselines)``.
        """
        call = build_call(
            inputs,
            target,
            additional_forward_args,
            baselines,
            use_baselines=True,
            require_float=True,
        )
        refs = call.expanded_baselines()
        mult, f_x, f_ref = deeplift_multipliers(self.model, call, refs, self.eps)
        attrs = self._combine(mult, call.inputs, refs, custom_attribution_func)
        result = call.restore(attrs)
        if not return_convergence_delta:
            return result
        return result, sum_rows(attrs) - (f_x - f_ref).to(attrs[0].dtype)

    def _combine(
        self, mult: Tensors, inputs: Tensors, refs: Tensors, custom: Callable[..., Any] | None
    ) -> Tensors:
        return combine(mult, inputs, refs, custom, self._multiply_by_inputs)

    def has_convergence_delta(self) -> bool:
        return True


class DeepLiftShap(DeepLift):
    """DeepLift averaged over a distribution of baselines (an approximation of SHAP values,
    Lundberg & Lee, 2017, https://arxiv.org/abs/1705.07874).

    Example:
        >>> import torch
        >>> from perspicio.attr import DeepLiftShap
        >>> from perspicio.testing import ReLUMLP
        >>> DeepLiftShap(ReLUMLP()).attribute(
        ...     torch.randn(3, 6), baselines=torch.randn(4, 6), target=0).shape
        torch.Size([3, 6])
    """

    def __init__(self, model: nn.Module, multiply_by_inputs: bool = True) -> None:
        super().__init__(model, multiply_by_inputs)

    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTensors,
        baselines: Any,
        target: Any = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        custom_attribution_func: Callable[..., Any] | None = None,
    ) -> TensorOrTensors | tuple[TensorOrTensors, Tensor]:
        """Mean DeepLift attribution over every baseline in ``baselines`` (``(B, ...)``)."""
        call = build_call(inputs, target, additional_forward_args, require_float=True)
        rows, refs = shap_rows(call, normalize_distribution(baselines, call.inputs))
        mult, f_x, f_ref = deeplift_multipliers(self.model, rows, refs, self.eps)
        attrs = self._combine(mult, rows.inputs, refs, custom_attribution_func)
        result = call.restore(mean_over_baselines(attrs, call.batch_size))
        if not return_convergence_delta:
            return result
        return result, sum_rows(attrs) - (f_x - f_ref).to(attrs[0].dtype)
