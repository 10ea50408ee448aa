"""Faithfulness: does removing what the explanation ranks highest change the output most?

Deletion and insertion curves follow pixel flipping (Samek et al., 2017,
https://arxiv.org/abs/1509.06321, MoRF/LeRF orders) and RISE's deletion/insertion games
(Petsiuk et al., 2018, https://arxiv.org/abs/1806.07421); faithfulness correlation is from
Bhatt et al. (2020, https://arxiv.org/abs/2005.00631).

Features are single scalars or groups given by a Captum-style ``feature_mask`` (integer ids,
one mask per input, broadcastable to it; a group may span several inputs). A group's
relevance is the sum of its attributions; removing a group sets it to the baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from perspicio._core.call import BaselineType, Call, TensorOrTensors, Tensors, build_call
from perspicio._core.masks import FeatureGroups
from perspicio._core.sweep import perturbed
from perspicio._core.target import flat_rows
from perspicio._core.validate import ArgumentError, check_count
from perspicio.metrics.infidelity import check_attributions
from perspicio.metrics.sampling import score_points


class Curve(NamedTuple):
    """A perturbation curve: the target score after removing a growing share of features.

    Attributes:
        fractions: share of the features (groups) removed or inserted at each point, ``(P,)``.
        scores: the target score of each example at each point, ``(N, P)``.
        auc: area under each example's curve over ``fractions`` (trapezoid rule), ``(N,)``.
    """

    fractions: Tensor
    scores: Tensor
    auc: Tensor


def group_relevance(groups: FeatureGroups, attributions: Tensors) -> Tensor:
    """The summed attribution of each feature (group), shape ``(N, F)``."""
    n = attributions[0].shape[0]
    dtype = torch.promote_types(attributions[0].dtype, torch.float32)
    out = torch.zeros(n, groups.n_features, dtype=dtype, device=attributions[0].device)
    for ids, a in zip(groups.dense, attributions):
        flat = flat_rows(ids.to(a.device).expand(n, *a.shape[1:]))
        out.scatter_add_(1, flat, flat_rows(a).to(dtype))
    return out


def element_ranks(groups: FeatureGroups, attributions: Tensors, morf: bool) -> Tensors:
    """Each scalar's position in the removal order (that of its group), ``(N, *shape[1:])``."""
    ranks = rank_groups(group_relevance(groups, attributions), morf)
    return tuple(r[0] for r in groups.select(ranks.unsqueeze(0)))


def rank_groups(relevance: Tensor, most_relevant_first: bool) -> Tensor:
    """Each group's position in the removal order, ``(N, G)``; ties keep the id order."""
    order = torch.argsort(relevance, dim=1, descending=most_relevant_first, stable=True)
    ranks = torch.empty_like(order)
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    return ranks.scatter_(1, order, positions)


def check_order(order: Any) -> bool:
    """``True`` for ``'morf'`` (most relevant first), ``False`` for ``'lerf'``."""
    if isinstance(order, str) and order.lower() in ("morf", "lerf"):
        return order.lower() == "morf"
    raise ArgumentError(
        f"order must be 'morf' (most relevant first) or 'lerf' (least relevant first), "
        f"got {order!r}"
    )


def _setup(
    inputs: Any,
    attributions: Any,
    baselines: BaselineType,
    additional_forward_args: Any,
    target: Any,
    feature_mask: Any,
) -> tuple[Call, Tensors, FeatureGroups]:
    call = build_call(inputs, target, additional_forward_args, baselines, use_baselines=True)
    attrs = check_attributions(attributions, call.inputs)
    return call, attrs, FeatureGroups.build(feature_mask, call.inputs)


def _curve(
    forward_func: Callable[..., Any],
    inputs: TensorOrTensors,
    attributions: TensorOrTensors,
    baselines: BaselineType,
    additional_forward_args: Any,
    target: Any,
    feature_mask: Any,
    order: str,
    n_steps: int | None,
    max_examples_per_batch: int | None,
    insert: bool,
) -> Curve:
    call, attrs, groups = _setup(
        inputs, attributions, baselines, additional_forward_args, target, feature_mask
    )
    morf = check_order(order)
    g = groups.n_features
    if n_steps is not None:
        check_count(n_steps, "n_steps")
    steps = g if n_steps is None else n_steps
    j = torch.arange(steps + 1, device=call.inputs[0].device)
    counts = (2 * j * g + steps) // (2 * steps)  # round(j * F / steps): features out at j
    ranks = element_ranks(groups, attrs, morf)  # (N, ...) per input
    # the unperturbed inputs are the first deletion point and the last insertion point
    first = 0 if insert else 1

    def make_inputs(start: int, stop: int) -> Tensors:
        k = counts[first + start : first + stop]
        # deletion: features ranked below the count are at the baseline; insertion: the rest
        gone = tuple(
            (r.unsqueeze(0) >= k.reshape(-1, *([1] * r.dim())))
            if insert
            else (r.unsqueeze(0) < k.reshape(-1, *([1] * r.dim())))
            for r in ranks
        )
        return perturbed(call.inputs, gone, call.expanded_baselines())

    table, base = score_points(forward_func, call, steps, make_inputs, max_examples_per_batch)
    rows = [table, base.unsqueeze(0)] if insert else [base.unsqueeze(0), table]
    values = torch.cat(rows).t()
    values = values.to(torch.promote_types(values.dtype, torch.float32))
    fractions = counts.to(values.dtype) / g
    return Curve(fractions, values, torch.trapezoid(values, fractions, dim=1))


def deletion_curve(
    forward_func: Callable[..., Any],
    inputs: TensorOrTensors,
    attributions: TensorOrTensors,
    baselines: BaselineType = None,
    additional_forward_args: Any = None,
    target: Any = None,
    feature_mask: Any = None,
    order: str = "morf",
    n_steps: int | None = None,
    max_examples_per_batch: int | None = None,
) -> Curve:
    """Deletion curve and its AUC (Samek et al., 2017; Petsiuk et al., 2018).

    Features are set to the baseline one after another in the order of their relevance
    (``'morf'``: most relevant first, a faithful explanation gives a fast drop and a low AUC;
    ``'lerf'``: least relevant first, a faithful explanation gives a high AUC). The curve has
    ``n_steps + 1`` points from the inputs (fraction 0) to the baselines (fraction 1).

    Args:
        attributions: the explanation, with the inputs' shapes; relevance is signed.
        baselines: values removed features take (Captum's forms; default zeros).
        feature_mask: integer group ids (Captum's form); a group is removed at once.
        order: ``'morf'`` or ``'lerf'``.
        n_steps: number of removal steps; ``None`` removes one feature (group) per step.
        max_examples_per_batch: at most this many model rows per forward pass (at least one
            whole batch); ``None`` sizes the passes from a memory budget (the perturbation
            engine's default). Results do not depend on it.

    Returns:
        A :class:`Curve` (``fractions``, ``scores`` of shape ``(N, n_steps + 1)``, ``auc``).

    Example:
        >>> import torch
        >>> from perspicio.metrics import deletion_curve
        >>> model = torch.nn.Linear(3, 1)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.tensor([[3.0, 2.0, 1.0]])), model.bias.zero_()
        >>> curve = deletion_curve(model, torch.ones(1, 3), torch.tensor([[3.0, 2.0, 1.0]]))
        >>> curve.scores
        tensor([[6., 3., 1., 0.]])
        >>> curve.auc
        tensor([2.3333])
    """
    return _curve(
        forward_func,
        inputs,
        attributions,
        baselines,
        additional_forward_args,
        target,
        feature_mask,
        order,
        n_steps,
        max_examples_per_batch,
        insert=False,
    )


def insertion_curve(
    forward_func: Callable[..., Any],
    inputs: TensorOrTensors,
    attributions: TensorOrTensors,
    baselines: BaselineType = None,
    additional_forward_args: Any = None,
    target: Any = None,
    feature_mask: Any = None,
    order: str = "morf",
    n_steps: int | None = None,
    max_examples_per_batch: int | None = None,
) -> Curve:
    """Insertion curve and its AUC (Petsiuk et al., 2018).

    Starts from the baselines and puts the inputs' features back in the order of their
    relevance (``'morf'``: most relevant first, a faithful explanation gives a fast rise and a
    high AUC). Same arguments as :func:`deletion_curve`.

    Example:
        >>> import torch
        >>> from perspicio.metrics import insertion_curve
        >>> model = torch.nn.Linear(3, 1)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.tensor([[3.0, 2.0, 1.0]])), model.bias.zero_()
        >>> insertion_curve(model, torch.ones(1, 3), torch.tensor([[3.0, 2.0, 1.0]])).scores
        tensor([[0., 3., 5., 6.]])
    """
    return _curve(
        forward_func,
        inputs,
        attributions,
        baselines,
        additional_forward_args,
        target,
        feature_mask,
        order,
        n_steps,
        max_examples_per_batch,
        insert=True,
    )


def _subset_size(subset_size: Any, n_groups: int) -> int:
    if isinstance(subset_size, bool) or not isinstance(subset_size, int | float):
        raise TypeError(f"subset_size must be an int or a float, got {subset_size!r}")
    if isinstance(subset_size, float):
        if not 0.0 < subset_size <= 1.0:
            raise ArgumentError(f"a float subset_size is a fraction in (0, 1], got {subset_size}")
        return max(1, round(subset_size * n_groups))
    if not 1 <= subset_size <= n_groups:
        raise ArgumentError(
            f"subset_size must be between 1 and the {n_groups} features, got {subset_size}"
        )
    return subset_size


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of the rows of ``a`` and ``b`` (``(N, S)``); 0 for a constant row."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    den = (a.pow(2).sum(1) * b.pow(2).sum(1)).sqrt()
    return torch.where(den > 0, (a * b).sum(1) / torch.where(den > 0, den, 1.0), 0.0)


def faithfulness_correlation(
    forward_func: Callable[..., Any],
    inputs: TensorOrTensors,
    attributions: TensorOrTensors,
    baselines: BaselineType = None,
    additional_forward_args: Any = None,
    target: Any = None,
    feature_mask: Any = None,
    n_perturb_samples: int = 100,
    subset_size: int | float = 0.1,
    max_examples_per_batch: int | None = None,
) -> Tensor:
    """Faithfulness correlation (Bhatt et al., 2020).

    For ``n_perturb_samples`` random subsets ``S`` of ``subset_size`` features (groups), the
    Pearson correlation between ``sum_{i in S} a_i`` and ``f(x) - f(x with S at the
    baseline)``. The subsets are drawn up front from the global torch generator, so the result
    does not depend on ``max_examples_per_batch``.

    Args:
        n_perturb_samples: random subsets per example.
        subset_size: an int (features per subset) or a float in (0, 1] (share of features).

    Returns:
        One correlation in ``[-1, 1]`` per example, shape ``(N,)``.

    Example:
        >>> import torch
        >>> from perspicio.metrics import faithfulness_correlation
        >>> model = torch.nn.Linear(8, 1)
        >>> x = torch.randn(2, 8)
        >>> exact = x * model.weight.detach()  # exact contributions of a linear model
        >>> corr = faithfulness_correlation(model, x, exact, n_perturb_samples=20, subset_size=3)
        >>> corr.round(decimals=4)
        tensor([1., 1.])
    """
    call, attrs, groups = _setup(
        inputs, attributions, baselines, additional_forward_args, target, feature_mask
    )
    check_count(n_perturb_samples, "n_perturb_samples")
    m = _subset_size(subset_size, groups.n_features)
    n, device = call.batch_size, call.inputs[0].device
    keys = torch.rand(n_perturb_samples, n, groups.n_features, device=device)
    chosen = torch.zeros_like(keys, dtype=torch.bool)
    chosen.scatter_(2, keys.topk(m, dim=2).indices, True)  # (S, N, F)
    removed = (group_relevance(groups, attrs).unsqueeze(0) * chosen).sum(2)  # (S, N)

    def make_inputs(start: int, stop: int) -> Tensors:
        gone = groups.select(chosen[start:stop])  # (k, N, ...) per input
        return perturbed(call.inputs, gone, call.expanded_baselines())

    table, f_x = score_points(
        forward_func, call, n_perturb_samples, make_inputs, max_examples_per_batch
    )
    drops = (f_x.unsqueeze(0) - table).to(removed.dtype)
    return pearson(removed.t(), drops.t())
