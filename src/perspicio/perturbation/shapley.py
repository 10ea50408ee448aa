"""Shapley values of feature groups: exact (every coalition) and by sampling permutations.

Both are plans over *coalitions*: perturbation ``t`` keeps the features of a coalition and
sets the others to the baseline, and the fold adds ``coef[t, f] * f(coalition t)`` to the
value of every feature ``f``. The unperturbed evaluation is the full coalition.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor

from perspicio._core.attribution import PerturbationAttribution
from perspicio._core.call import Tensors, build_call
from perspicio._core.masks import FeatureGroups, MaskType
from perspicio._core.sweep import (
    AUTO,
    check_per_eval,
    execute,
    future_of,
    model_evaluator,
    perturbed,
    wants_future,
)
from perspicio._core.validate import ArgumentError, check_count
from perspicio.perturbation.ablation import spread_rows

EXACT_WARN_FEATURES = 16
EXACT_MAX_FEATURES = 40


class Coalitions:
    """Shared part of the Shapley plans: perturbing to coalitions and the value table."""

    total: int

    def __init__(self, values: Tensors, baselines: Tensors, groups: FeatureGroups) -> None:
        self.values, self.baselines, self.groups = values, baselines, groups
        self.phi: Tensor | None = None  # (n_out, F) in float64

    def keep(self, start: int, stop: int) -> Tensor:
        """``(k, F)`` bool: the features each coalition of the range keeps."""
        raise NotImplementedError

    def perturb(self, start: int, stop: int) -> Tensors:
        dropped = self.groups.select(~self.keep(start, stop).to(self.values[0].device))
        return perturbed(self.values, dropped, self.baselines)

    def _table(self, base: Tensor) -> Tensor:
        if self.phi is None:
            self.phi = torch.zeros(base.numel(), self.groups.n_features, dtype=torch.float64)
            self.phi = self.phi.to(base.device)
        return self.phi

    def finish(self, base: Tensor, full_coef: Tensor, scale: float) -> Tensor:
        """``(phi + f(x) * full_coef) * scale``, in the output's dtype."""
        table = self._table(base) + base.reshape(-1, 1).double() * full_coef.to(base.device)
        return (table * scale).to(base.dtype)


class SampledShapley(Coalitions):
    """Plan: ``n_samples`` random orders; along each, features join one at a time.

    Perturbation 0 is the empty coalition (shared by every order); then for each order ``p``
    the coalitions of its first ``1 .. F-1`` features. Feature ``perm[p, s-1]`` gains
    ``f(first s) - f(first s-1)``, so each evaluation is added to the feature that joined
    last and subtracted from the one that joins next.
    """

    def __init__(
        self, values: Tensors, baselines: Tensors, groups: FeatureGroups, n_samples: int
    ) -> None:
        super().__init__(values, baselines, groups)
        n_features = groups.n_features
        self.n_samples = n_samples
        self.perms = torch.rand(n_samples, n_features).argsort(1)  # CPU draws: device-independent
        self.ranks = self.perms.argsort(1)
        self.steps = max(n_features - 1, 1)
        self.total = 1 + n_samples * (n_features - 1) if n_features else 0

    def _order_step(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return (t - 1) // self.steps, (t - 1) % self.steps + 1

    def keep(self, start: int, stop: int) -> Tensor:
        t = torch.arange(max(start, 1), stop)
        order, step = self._order_step(t)
        keep = self.ranks[order] < step.unsqueeze(1)
        if start == 0:
            keep = torch.cat([keep.new_zeros(1, self.groups.n_features), keep])
        return keep

    def fold(self, start: int, stop: int, evals: Tensor, base: Tensor) -> None:
        phi = self._table(base)
        ev = evals.T.double()  # (n_out, k)
        perms = self.perms.to(phi.device)
        if start == 0:
            phi.index_add_(1, perms[:, 0], -ev[:, :1].expand(-1, self.n_samples))
            ev = ev[:, 1:]
        order, step = self._order_step(torch.arange(max(start, 1), stop, device=phi.device))
        phi.index_add_(1, perms[order, step - 1], ev)
        phi.index_add_(1, perms[order, step], -ev)

    def result(self, base: Tensor) -> Tensor:
        n_features = self.groups.n_features
        last = torch.bincount(self.perms[:, -1], minlength=n_features) if n_features else None
        full = last.double() if last is not None else torch.zeros(0, dtype=torch.float64)
        return self.finish(base, full, 1.0 / self.n_samples)


class ExactShapley(Coalitions):
    """Plan: every coalition but the full one (bit ``f`` of ``t`` keeps feature ``f``).

    ``phi_f = sum_T f(T) * (w(|T| - 1) if f in T else -w(|T|))`` with the Shapley weight
    ``w(s) = s! (F - 1 - s)! / F!``: ``2^F`` evaluations instead of Captum's ``F * F!``,
    with the same values.
    """

    def __init__(self, values: Tensors, baselines: Tensors, groups: FeatureGroups) -> None:
        super().__init__(values, baselines, groups)
        n = groups.n_features
        self.total = 2**n - 1
        self.weights = torch.tensor(
            [1.0 / (n * math.comb(n - 1, s)) for s in range(n)] or [0.0], dtype=torch.float64
        )

    def keep(self, start: int, stop: int) -> Tensor:
        t = torch.arange(start, stop, dtype=torch.long)
        return ((t.unsqueeze(1) >> torch.arange(self.groups.n_features)) & 1).bool()

    def fold(self, start: int, stop: int, evals: Tensor, base: Tensor) -> None:
        keep = self.keep(start, stop)
        size = keep.sum(1, keepdim=True)
        n = self.groups.n_features
        joined = self.weights[(size - 1).clamp(min=0)]
        absent = self.weights[size.clamp(max=n - 1)]
        coef = torch.where(keep, joined, -absent).to(evals.device)
        self._table(base).add_(evals.T.double() @ coef)

    def result(self, base: Tensor) -> Tensor:
        full = self.weights[-1].expand(self.groups.n_features)
        return self.finish(base, full, 1.0)


class ShapleyValueSampling(PerturbationAttribution):
    """Shapley value sampling (Castro et al., 2009, doi:10.1016/j.cor.2008.04.004; Štrumbelj &
    Kononenko, 2010).

    For ``n_samples`` random orders of the feature groups, the groups are switched from the
    baseline to the input one at a time; a group's attribution is its average marginal
    change of the output. Along every order the changes add up to ``f(x) - f(baseline)``
    (efficiency). Scalars of a group share its value; ids shared across input tensors form
    one group.

    Attributions have shape ``(*output_shape, *input.shape[1:])``: the inputs' shape for one
    value per example, first dimension 1 for one value per batch, ``(N, C, ...)`` for
    several values per example (no target).

    Example:
        >>> import torch
        >>> from perspicio.attr import ShapleyValueSampling
        >>> from perspicio.testing import BasicLinearModel
        >>> _ = torch.manual_seed(0)
        >>> svs = ShapleyValueSampling(BasicLinearModel())
        >>> svs.attribute(torch.ones(2, 4), target=0, n_samples=5).shape
        torch.Size([2, 4])
    """

    def attribute(
        self,
        inputs: Any,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: MaskType = None,
        n_samples: int = 25,
        perturbations_per_eval: int = AUTO,
        show_progress: bool = False,
    ) -> Any:
        """Sampled Shapley values, shaped as in the class docstring.

        Args:
            baselines: the value of an absent feature: ``None`` (zeros), a number, a tensor
                broadcastable to the input, or a tuple of these, one per input.
            feature_mask: integer group ids, one tensor per input, broadcastable to it.
            n_samples: the number of random feature orders.
            perturbations_per_eval: at most this many coalitions per forward pass. Left at its
                default (Captum's 1), the number is chosen from a memory budget (same results;
                one per pass when the output aggregates the batch).
            show_progress: show a progress bar (tqdm when installed).
        """
        check_count(n_samples, "n_samples")
        return self._run(
            wants_future(), inputs, baselines, target, additional_forward_args, feature_mask,
            perturbations_per_eval, show_progress, n_samples,
        )  # fmt: skip

    attribute_future = future_of(attribute)

    def feature_plan(
        self, values: Tensors, baselines: Tensors, groups: FeatureGroups, n_samples: int = 25
    ) -> Any:
        return SampledShapley(values, baselines, groups, n_samples)

    def _run(
        self,
        future: bool,
        inputs: Any,
        baselines: Any,
        target: Any,
        args: Any,
        feature_mask: MaskType,
        per_eval: int,
        show_progress: bool,
        n_samples: int = 25,
    ) -> Any:
        call = build_call(inputs, target, args, baselines, use_baselines=True, sparse=True)
        groups = FeatureGroups.build(feature_mask, call.inputs)
        check_per_eval(per_eval)
        assert call.baselines is not None
        plan = self.feature_plan(call.inputs, call.baselines, groups, n_samples)

        def finish(base: Tensor) -> Any:
            out_shape = tuple(base.shape) or (1,)
            attrs = spread_rows(groups, plan.result(base), base)
            return call.restore(tuple(a.reshape(*out_shape, *a.shape[1:]) for a in attrs))

        return execute(
            plan,
            model_evaluator(self.forward_func, call),
            call.inputs,
            finish,
            per_eval,
            future=future,
            show_progress=show_progress,
            desc=self.get_name(),
        )


class ShapleyValues(ShapleyValueSampling):
    """Exact Shapley values (Shapley, 1953) of the feature groups.

    Every coalition of the ``F`` groups is evaluated once (``2^F - 1`` evaluations besides
    the input itself; Captum enumerates all ``F!`` orders, ``F * F!`` evaluations, with the
    same result) and weighted by the Shapley kernel. Meant for up to about 15 groups: a
    warning is given from 16 on, and more than 40 are refused. Output shapes as for
    :class:`ShapleyValueSampling`.

    Example:
        >>> import torch
        >>> from perspicio.attr import ShapleyValues
        >>> from perspicio.testing import BasicLinearModel
        >>> sv = ShapleyValues(BasicLinearModel())
        >>> attr = sv.attribute(torch.ones(1, 4), target=0)
        >>> attr.shape
        torch.Size([1, 4])
    """

    def attribute(  # type: ignore[override]
        self,
        inputs: Any,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: MaskType = None,
        perturbations_per_eval: int = AUTO,
        show_progress: bool = False,
    ) -> Any:
        """Exact Shapley values; arguments as for :meth:`ShapleyValueSampling.attribute`."""
        return self._run(
            wants_future(), inputs, baselines, target, additional_forward_args, feature_mask,
            perturbations_per_eval, show_progress,
        )  # fmt: skip

    def feature_plan(
        self, values: Tensors, baselines: Tensors, groups: FeatureGroups, n_samples: int = 25
    ) -> Any:
        n = groups.n_features
        if n > EXACT_MAX_FEATURES:
            raise ArgumentError(
                f"ShapleyValues would evaluate 2^{n} coalitions of {n} features: group them "
                "with feature_mask, or use ShapleyValueSampling"
            )
        if n >= EXACT_WARN_FEATURES:
            warnings.warn(
                f"ShapleyValues evaluates 2^{n} - 1 coalitions of {n} features; consider "
                "grouping features or ShapleyValueSampling",
                stacklevel=4,
            )
        return ExactShapley(values, baselines, groups)
