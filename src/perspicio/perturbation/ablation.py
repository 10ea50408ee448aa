"""Feature ablation and occlusion: replace one feature (or window) at a time by a baseline.

Both are plans for :func:`perspicio._core.sweep.sweep`. :class:`Ablation` is the plan
behind every "one feature group at a time" method: perturbation ``j`` replaces every scalar
of feature ``j`` by a replacement (the baseline for ablation, a shuffled copy for
permutation) and the attribution of feature ``j`` is ``f(x) - f(x with j replaced)``.
Layer variants reuse it unchanged with layer site values and a
:func:`~perspicio._core.sweep.layer_evaluator`; see :func:`ablate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from perspicio._core.attribution import PerturbationAttribution
from perspicio._core.call import Tensors, build_call, replaced_dtype
from perspicio._core.masks import FeatureGroups, MaskType
from perspicio._core.sweep import (
    AUTO,
    Evaluate,
    check_per_eval,
    execute,
    future_of,
    is_per_example,
    model_evaluator,
    perturbed,
    wants_future,
)
from perspicio._core.validate import ArgumentError, plain_ints

Replacement = Callable[[int, int], Sequence[Any]]
"""``(start, stop) ->`` per site tensor, values broadcastable to ``(stop - start, N, *S)``."""


class Ablation:
    """Plan: perturbation ``j`` replaces feature ``j``; folds ``f(x) - f(perturbed)``.

    ``result(base)`` is the ``(n_out, F)`` table of per-feature attributions, one row per
    value of the (flattened) model output, in the output's dtype (integer outputs give
    integer attributions, as in Captum).
    """

    def __init__(self, values: Tensors, groups: FeatureGroups, replacement: Replacement) -> None:
        self.values, self.groups, self.replacement = values, groups, replacement
        self.total = groups.n_features
        self.table: Tensor | None = None
        self.output_dtype: torch.dtype | None = None  # set by the sweep

    def perturb(self, start: int, stop: int) -> Tensors:
        device = self.values[0].device
        rows = torch.arange(stop - start, device=device)
        onehot = torch.zeros(stop - start, self.total, dtype=torch.bool, device=device)
        onehot[rows, rows + start] = True
        return perturbed(self.values, self.groups.select(onehot), self.replacement(start, stop))

    def fold(self, start: int, stop: int, evals: Tensor, base: Tensor) -> None:
        if self.table is None:
            self.table = base.new_zeros(base.numel(), self.total)
        self.table[:, start:stop] = (base.unsqueeze(0) - evals).T

    def result(self, base: Tensor) -> Tensor:
        table = base.new_zeros(max(base.numel(), 1), 0) if self.table is None else self.table
        dtype = self.output_dtype
        if dtype is None or dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
            return table
        return table.round().to(dtype)


def fixed(replacements: Sequence[Any]) -> Replacement:
    """The same replacement for every perturbation (a baseline)."""
    return lambda start, stop: replacements


def spread_rows(groups: FeatureGroups, table: Tensor, base: Tensor) -> Tensors:
    """Per-feature rows in the inputs' shapes; per-example masks need per-example outputs."""
    n = groups.batch_size
    if groups.per_example and n > 1 and not is_per_example(base, n):
        raise ArgumentError(
            f"forward_func returned shape {tuple(base.shape)} for {n} examples (one value for "
            "the whole batch), so feature_mask must be shared by the batch (first dimension 1)"
        )
    return groups.spread(table)


def ablate(
    evaluate: Evaluate,
    values: Tensors,
    baselines: Tensors,
    groups: FeatureGroups,
    per_eval: int | None = AUTO,
    *,
    future: bool = False,
    show_progress: bool = False,
    desc: str = "Feature Ablation",
) -> Any:
    """Feature ablation at any site: attributions ``(n_out, *S)`` per site tensor.

    This is the extension point for Layer/Neuron variants: ``values`` are the site's values
    (inputs or a layer's), ``evaluate`` maps stacked perturbed values to the objective
    (:func:`~perspicio._core.sweep.model_evaluator`,
    :func:`~perspicio._core.sweep.layer_evaluator`, or a neuron reader), ``groups``
    the validated mask over the values. A Future of the tuple with ``future=True``.
    """
    plan = Ablation(values, groups, fixed(baselines))
    return execute(
        plan,
        evaluate,
        values,
        lambda base: spread_rows(groups, plan.result(base), base),
        per_eval,
        future=future,
        show_progress=show_progress,
        desc=desc,
    )


class FeatureAblation(PerturbationAttribution):
    """Feature ablation: replace each feature (group) by a baseline and record the change.

    The attribution of a feature group is ``f(x) - f(x with the group set to the baseline)``
    (the occlusion/ablation analysis of Zeiler & Fergus, 2014,
    https://arxiv.org/abs/1311.2901, one group at a time). Every scalar of a group gets the
    group's value. Feature ids in ``feature_mask`` are shared across input tensors: scalars of
    different tensors with the same id are ablated together.

    The output of ``forward_func`` (after ``target``) may be one value per example, several
    per example (then attributions have shape ``(N * values, *input.shape[1:])``, masks
    shared by the batch), or one value (or a fixed-size tensor) for the whole batch (then
    attributions have first dimension 1, or that size, and masks must have first dimension 1).

    Example:
        >>> import torch
        >>> from perspicio.attr import FeatureAblation
        >>> from perspicio.testing import BasicLinearModel
        >>> x = torch.ones(2, 4)
        >>> FeatureAblation(BasicLinearModel()).attribute(x, target=0).shape
        torch.Size([2, 4])
    """

    def attribute(
        self,
        inputs: Any,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: MaskType = None,
        perturbations_per_eval: int = AUTO,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Ablation attributions, shaped like the inputs (see the class docstring).

        Args:
            baselines: values that replace ablated scalars: ``None`` (zeros), a number, a
                tensor broadcastable to the input (first dimension 1 or N), or a tuple of
                these, one per input.
            feature_mask: integer group ids, one tensor per input, broadcastable to it (first
                dimension 1: one mask for the batch). ``None``: every scalar is a feature.
            perturbations_per_eval: at most this many ablated copies of the batch per forward
                pass. Left at its default (Captum's 1), the number is chosen from a memory
                budget instead (same results; one per pass when the forward function returns
                one value for the whole batch).
            show_progress: show a progress bar (tqdm when installed).
            **kwargs: ignored, as in Captum.
        """
        return self._run(
            wants_future(), inputs, baselines, target, additional_forward_args, feature_mask,
            perturbations_per_eval, show_progress,
        )  # fmt: skip

    attribute_future = future_of(attribute)

    def feature_plan(self, values: Tensors, baselines: Tensors, groups: FeatureGroups) -> Any:
        """The sweep plan over feature groups (DataLoaderAttribution runs it on a table of
        feature switches)."""
        return Ablation(values, groups, fixed(baselines))

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
    ) -> Any:
        call = build_call(inputs, target, args, baselines, use_baselines=True, sparse=True)
        groups = FeatureGroups.build(feature_mask, call.inputs)
        check_per_eval(per_eval)
        assert call.baselines is not None
        attrs = ablate(
            model_evaluator(self.forward_func, call),
            call.inputs,
            call.baselines,
            groups,
            per_eval,
            future=future,
            show_progress=show_progress,
            desc=self.get_name(),
        )
        return attrs.then(lambda fut: call.restore(fut.value())) if future else call.restore(attrs)


@dataclass(frozen=True)
class Windows:
    """The positions of a sliding window over one input (without its batch dimension).

    Along each dimension the window starts at ``0, stride, 2 * stride, ...`` until it reaches
    the end; the last window may be cut off by the edge, so every scalar is covered.
    """

    shape: tuple[int, ...]
    window: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(
            math.ceil((s - w) / st) + 1 for s, w, st in zip(self.shape, self.window, self.stride)
        )

    @property
    def n(self) -> int:
        return math.prod(self.counts)

    def _spans(self, d: int, positions: Tensor) -> Tensor:
        """``(k, shape[d])``: which entries of dimension ``d`` each position covers."""
        lo = (positions * self.stride[d]).unsqueeze(1)
        at = torch.arange(self.shape[d], device=positions.device)
        return (at >= lo) & (at < lo + self.window[d])

    def region(self, index: int) -> tuple[slice, ...]:
        """The scalars window ``index`` (row-major order) covers, as one slice per dimension."""
        out = []
        for d in reversed(range(len(self.shape))):
            index, position = divmod(index, self.counts[d])
            lo = position * self.stride[d]
            out.append(slice(lo, lo + self.window[d]))
        return tuple(reversed(out))

    def coverage(self, device: torch.device) -> Tensor:
        """``shape``: how many windows cover each scalar (at least 1)."""
        total = torch.ones((), device=device)
        for d in range(len(self.shape)):
            per_dim = self._spans(d, torch.arange(self.counts[d], device=device)).sum(0)
            total = total.unsqueeze(-1) * per_dim
        return total


class OcclusionPlan:
    """Plan: perturbation ``j`` sets window ``j`` (windows of input 0 first) to the baseline;
    overlapping windows' differences are averaged per scalar.

    Windows are boxes, so both directions work on slices: a chunk is ``k`` copies of the
    inputs with one box each overwritten, and each output difference is added to its box.
    """

    def __init__(self, values: Tensors, baselines: Tensors, windows: Sequence[Windows]) -> None:
        self.values, self.windows = values, list(windows)
        self.baselines = [  # full-size views: a box of the baseline is a slice of it
            b.to(replaced_dtype(x, b)).expand_as(x)
            for x, b in (
                (x, torch.as_tensor(b, device=x.device)) for x, b in zip(values, baselines)
            )
        ]
        self.offsets = [0]
        for w in self.windows:
            self.offsets.append(self.offsets[-1] + w.n)
        self.total = self.offsets[-1]
        self.sums: list[Tensor] | None = None

    def _mine(self, i: int, start: int, stop: int) -> range:
        """The perturbations of the range that occlude input ``i``."""
        lo = self.offsets[i]
        return range(max(start, lo), min(stop, lo + self.windows[i].n))

    def perturb(self, start: int, stop: int) -> Tensors:
        k, out = stop - start, []
        for i, (x, base) in enumerate(zip(self.values, self.baselines)):
            stacked = x.to(base.dtype).unsqueeze(0).expand(k, *x.shape).clone()  # (k, N, *S)
            for j in self._mine(i, start, stop):
                box = (slice(None), *self.windows[i].region(j - self.offsets[i]))
                stacked[j - start][box] = base[box]
            out.append(stacked.reshape(k * x.shape[0], *x.shape[1:]))
        return tuple(out)

    def fold(self, start: int, stop: int, evals: Tensor, base: Tensor) -> None:
        diff = base.unsqueeze(0) - evals  # (k, n_out)
        if self.sums is None:
            self.sums = [base.new_zeros(base.numel(), *x.shape[1:]) for x in self.values]
        for i, sums in enumerate(self.sums):
            ones = (1,) * (sums.dim() - 1)
            for j in self._mine(i, start, stop):
                box = (slice(None), *self.windows[i].region(j - self.offsets[i]))
                sums[box] += diff[j - start].view(-1, *ones).to(sums.device)

    def result(self, base: Tensor) -> Tensors:
        sums = self.sums or [base.new_zeros(base.numel(), *x.shape[1:]) for x in self.values]
        return tuple(
            (s.to(x.device) / w.coverage(x.device)).reshape(-1, *x.shape[1:])
            for s, x, w in zip(sums, self.values, self.windows)
        )


def _per_input(value: Any, inputs: Tensors, name: str) -> tuple[Any, ...]:
    """Captum's forms: one spec for a single input, or a tuple of specs, one per input."""
    single = len(inputs) == 1 and not (isinstance(value, tuple) and len(value) == 1)
    items = (value,) if single else value
    if not isinstance(items, tuple) or len(items) != len(inputs):
        raise ArgumentError(f"{name} must give one entry per input ({len(inputs)}), got {value!r}")
    return items


def _dims(value: Any, x: Tensor, name: str) -> tuple[int, ...]:
    ndim = x.dim() - 1
    dims = (value,) * ndim if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(dims, tuple) or len(dims) != ndim:
        raise ArgumentError(
            f"{name} is {value!r}: it needs one int per input dimension after the batch "
            f"({ndim} for input shape {tuple(x.shape)})"
        )
    for v in dims:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must hold ints, got {v!r}")
        if v < 1:
            raise ArgumentError(f"{name} must be positive, got {value!r}")
    return dims


def occlusion_windows(sliding_window_shapes: Any, strides: Any, inputs: Tensors) -> list[Windows]:
    """Validated windows for every input (Captum's argument forms), before any model call."""
    sliding_window_shapes, strides = plain_ints(sliding_window_shapes), plain_ints(strides)
    shapes_in = sliding_window_shapes
    if isinstance(shapes_in, tuple) and (not shapes_in or isinstance(shapes_in[0], int)):
        shapes_in = (shapes_in,)
    if not isinstance(shapes_in, tuple) or len(shapes_in) != len(inputs):
        raise ArgumentError(
            f"sliding_window_shapes must give one shape per input ({len(inputs)}), got "
            f"{sliding_window_shapes!r}"
        )
    if strides is None or (isinstance(strides, int) and not isinstance(strides, bool)):
        strides = (1 if strides is None else strides,) * len(inputs)
    strides_in = _per_input(strides, inputs, "strides")
    out = []
    for i, (x, shape, stride) in enumerate(zip(inputs, shapes_in, strides_in)):
        name = f"[{i}]" if len(inputs) > 1 else ""
        if not isinstance(shape, tuple):
            raise ArgumentError(f"sliding_window_shapes{name} must be a tuple, got {shape!r}")
        window = _dims(shape, x, f"sliding_window_shapes{name}")
        step = _dims(stride, x, f"strides{name}")
        size = tuple(x.shape[1:])
        if any(w > s for w, s in zip(window, size)):
            raise ArgumentError(
                f"sliding_window_shapes{name} {window} is larger than the input {size}"
            )
        if any(st > w and w < s for st, w, s in zip(step, window, size)):
            raise ArgumentError(
                f"strides{name} {step} is larger than the window {window} in a dimension the "
                "window does not cover entirely: some scalars would never be occluded"
            )
        out.append(Windows(size, window, step))
    return out


class Occlusion(FeatureAblation):
    """Occlusion (Zeiler & Fergus, 2014, https://arxiv.org/abs/1311.2901).

    A window of ``sliding_window_shapes`` slides over each input with ``strides``; each
    position is set to the baseline and the change ``f(x) - f(x occluded)`` is credited to
    every scalar under the window; scalars under several windows get the average.

    Example:
        >>> import torch
        >>> from perspicio.attr import Occlusion
        >>> from perspicio.testing import ConvNet
        >>> x = torch.rand(1, 1, 8, 8)
        >>> occ = Occlusion(ConvNet())
        >>> occ.attribute(x, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2), target=3).shape
        torch.Size([1, 1, 8, 8])
    """

    def attribute(  # type: ignore[override]
        self,
        inputs: Any,
        sliding_window_shapes: Any,
        strides: Any = None,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        perturbations_per_eval: int = AUTO,
        show_progress: bool = False,
    ) -> Any:
        """Occlusion attributions, shaped like the inputs.

        Args:
            sliding_window_shapes: the window, a tuple with one int per input dimension after
                the batch; a tuple of such tuples for several inputs.
            strides: the step of the window: ``None`` (1), an int (every dimension), a tuple
                per dimension, or a tuple of these, one per input. A step may exceed the
                window only where the window spans the whole dimension.
            baselines: as for :class:`FeatureAblation`.
            perturbations_per_eval: as for :class:`FeatureAblation` (default: from a memory
                budget, with the same results).
            show_progress: show a progress bar (tqdm when installed).
        """
        return self._occlude(
            wants_future(), inputs, sliding_window_shapes, strides, baselines, target,
            additional_forward_args, perturbations_per_eval, show_progress,
        )  # fmt: skip

    attribute_future = future_of(attribute)

    def _occlude(
        self,
        future: bool,
        inputs: Any,
        sliding_window_shapes: Any,
        strides: Any,
        baselines: Any,
        target: Any,
        args: Any,
        per_eval: int,
        show_progress: bool,
    ) -> Any:
        call = build_call(inputs, target, args, baselines, use_baselines=True)
        windows = occlusion_windows(sliding_window_shapes, strides, call.inputs)
        check_per_eval(per_eval)
        assert call.baselines is not None
        plan = OcclusionPlan(call.inputs, call.baselines, windows)
        return execute(
            plan,
            model_evaluator(self.forward_func, call),
            call.inputs,
            lambda base: call.restore(plan.result(base)),
            per_eval,
            future=future,
            show_progress=show_progress,
            desc=self.get_name(),
        )
