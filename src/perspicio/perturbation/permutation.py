"""Permutation feature importance: shuffle one feature group at a time across the batch."""

from __future__ import annotations

from collections.abc import Callable
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
    wants_future,
)
from perspicio._core.validate import ArgumentError
from perspicio.perturbation.ablation import Ablation, Replacement, spread_rows


def random_permutations(k: int, n: int) -> Tensor:
    """``(k, n)`` random orderings of ``range(n)``, none of them the identity when ``n >= 2``.

    Drawn on the CPU from the global generator, so a seed gives the same draws on any device.
    """
    if n < 2:  # the identity is the only ordering
        return torch.zeros(k, n, dtype=torch.long)
    perms = torch.rand(k, n).argsort(1)
    identity = torch.arange(n)
    stuck = (perms == identity).all(1)
    while bool(stuck.any()):
        perms[stuck] = torch.rand(int(stuck.sum()), n).argsort(1)
        stuck = (perms == identity).all(1)
    return perms


def _permute_feature(x: Tensor, feature_mask: Tensor) -> Tensor:
    """The default ``perm_func``: the masked scalars of ``x`` shuffled across the batch.

    ``feature_mask`` is a bool tensor broadcastable to ``x``; the row order is a random
    permutation other than the identity, so ``x`` needs at least two examples.
    """
    if x.shape[0] < 2:
        raise ArgumentError(f"cannot shuffle a feature across a batch of {x.shape[0]} example")
    perm = random_permutations(1, x.shape[0])[0].to(x.device)
    return torch.where(feature_mask.to(torch.bool), x[perm], x)


class FeaturePermutation(PerturbationAttribution):
    """Permutation feature importance (Breiman, 2001; Fisher et al., 2019,
    https://arxiv.org/abs/1801.01489).

    Each feature group is shuffled across the batch, the others left as they are; its
    attribution is ``f(x) - f(x with the group shuffled)``. ``forward_func`` typically returns
    one value for the whole batch (a loss or an accuracy), then attributions have first
    dimension 1; with one value per example they have the inputs' shape.

    With the default ``perm_func`` every group gets its own random ordering of the batch
    (shared by all tensors of a group that spans several inputs), drawn up front. A custom
    ``perm_func(x, mask) -> x_shuffled`` is called per feature and input tensor with a bool
    mask of the feature's scalars; only those scalars are taken from its result.

    Example:
        >>> import torch
        >>> from perspicio.attr import FeaturePermutation
        >>> from perspicio.testing import BasicLinearModel
        >>> _ = torch.manual_seed(0)
        >>> model = BasicLinearModel()
        >>> FeaturePermutation(model).attribute(torch.randn(8, 4), target=1).shape
        torch.Size([8, 4])
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        perm_func: Callable[[Tensor, Tensor], Tensor] = _permute_feature,
    ) -> None:
        super().__init__(forward_func)
        if not callable(perm_func):
            raise TypeError(f"perm_func must be callable, got {type(perm_func).__name__}")
        self.perm_func = perm_func

    def attribute(
        self,
        inputs: Any,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: MaskType = None,
        perturbations_per_eval: int = AUTO,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Permutation importances, shaped like the inputs (first dimension 1 for a batch-level
        output).

        Args:
            feature_mask: integer group ids, one tensor per input, broadcastable to it; ids
                shared across inputs are shuffled together. ``None``: every scalar.
            perturbations_per_eval: at most this many shuffled copies of the batch per forward
                pass. Left at its default (Captum's 1), the number is chosen from a memory
                budget (same results; one per pass when the output aggregates the batch).
            show_progress: show a progress bar (tqdm when installed).
            **kwargs: ignored, as in Captum (including ``baselines``).
        """
        return self._run(
            wants_future(), inputs, target, additional_forward_args, feature_mask,
            perturbations_per_eval, show_progress,
        )  # fmt: skip

    attribute_future = future_of(attribute)

    def _replacement(self, values: Tensors, groups: FeatureGroups) -> Replacement:
        if self.perm_func is _permute_feature:
            n = values[0].shape[0]
            perms = random_permutations(groups.n_features, n).to(values[0].device)
            own = {  # a sparse input (other first dimension) is shuffled over its own rows
                i: random_permutations(groups.n_features, x.shape[0]).to(x.device)
                for i, x in enumerate(values)
                if x.shape[0] != n
            }
            return lambda start, stop: [
                x[own.get(i, perms)[start:stop]] for i, x in enumerate(values)
            ]

        def custom(start: int, stop: int) -> list[Tensor]:
            rows = torch.arange(stop - start, device=values[0].device)
            onehot = torch.zeros(stop - start, groups.n_features, dtype=torch.bool)
            onehot[rows, rows + start] = True
            out = []
            for x, sel in zip(values, groups.select(onehot.to(values[0].device))):
                out.append(torch.stack([self._permuted(x, s) for s in sel.unbind(0)]))
            return out

        return custom

    def _permuted(self, x: Tensor, selected: Tensor) -> Tensor:
        """``perm_func``'s shuffle of the selected scalars of ``x``, checked for its shape."""
        if not selected.any():
            return x
        out = self.perm_func(x, selected)
        if not isinstance(out, Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ArgumentError(
                f"perm_func returned {got} for an input of shape {tuple(x.shape)}: it must "
                "return the input with the selected feature shuffled, in the same shape"
            )
        return out

    def _run(
        self,
        future: bool,
        inputs: Any,
        target: Any,
        args: Any,
        feature_mask: MaskType,
        per_eval: int,
        show_progress: bool,
    ) -> Any:
        call = build_call(inputs, target, args, sparse=True)
        groups = FeatureGroups.build(feature_mask, call.inputs)
        check_per_eval(per_eval)
        if self.perm_func is _permute_feature and call.batch_size < 2:
            raise ArgumentError(
                f"FeaturePermutation shuffles features across the batch, which needs at least "
                f"2 examples; got a batch of {call.batch_size}"
            )
        plan = Ablation(call.inputs, groups, self._replacement(call.inputs, groups))
        return execute(
            plan,
            model_evaluator(self.forward_func, call),
            call.inputs,
            lambda base: call.restore(spread_rows(groups, plan.result(base), base)),
            per_eval,
            future=future,
            show_progress=show_progress,
            desc=self.get_name(),
        )
