"""Integrated Gradients on any site (inputs here; layers and neurons build on ``integrate``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from perspicio._core.attribution import GradientAttribution, sum_rows
from perspicio._core.call import Call, TensorOrTensors, Tensors, build_call
from perspicio._core.forward import scores
from perspicio._core.sites import InputSite, Objective, Site, target_objective
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
    forward_func: Any, call: Call, attributions: Tensors, starts: Tensors
) -> Tensor:
    """``Σ attributions − (f(inputs) − f(starts))`` per example."""
    with torch.no_grad():
        f_end = scores(forward_func, call)
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

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs
