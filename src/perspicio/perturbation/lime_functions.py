"""Captum's LIME helper functions, and LIME's similarity kernel done for many samples at once.

``get_exp_kernel_similarity_function``, ``default_perturb_func``,
``default_from_interp_rep_transform`` and ``construct_feature_mask`` keep Captum's names and
one-sample calling conventions (they are what :class:`~perspicio.attr.Lime` uses by default,
and what user functions may wrap); :meth:`ExpKernel.batched` is the batched form of the
default similarity used by the fast path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import TensorOrTensors, Tensors, as_tensors, replaced_dtype
from perspicio._core.masks import (
    FeatureGroups,
    MaskType,
    default_feature_mask,
    format_feature_mask,
)
from perspicio._core.validate import ArgumentError
from perspicio.perturbation.coalitions import group_sums


def _flat(value: TensorOrTensors) -> Tensor:
    return torch.cat([t.reshape(-1) for t in as_tensors(value)]).float()


class ExpKernel:
    """LIME's similarity ``exp(−d² / (2 · kernel_width²))`` of the original and perturbed input.

    ``d`` is the cosine distance (``1 − cos``) or the Euclidean distance between the flattened
    inputs (all input tensors concatenated). Called as Captum's similarity functions are, one
    sample at a time; :meth:`batched` gives the weights of all coalitions at once.
    """

    def __init__(self, distance_mode: str = "cosine", kernel_width: float = 1.0) -> None:
        if distance_mode not in ("cosine", "euclidean"):
            raise ArgumentError(
                f"distance_mode must be 'cosine' or 'euclidean', got {distance_mode!r}"
            )
        self.distance_mode, self.kernel_width = distance_mode, kernel_width

    def __call__(
        self, original_inp: TensorOrTensors, perturbed_inp: TensorOrTensors, _: Any, **kwargs: Any
    ) -> float:
        a, b = _flat(original_inp), _flat(perturbed_inp)
        if self.distance_mode == "cosine":
            dist = 1 - torch.nn.functional.cosine_similarity(a, b, dim=0)
        else:
            dist = torch.linalg.vector_norm(a - b)
        return math.exp(-(float(dist) ** 2) / (2 * self.kernel_width**2))

    def batched(
        self, x: Tensors, base: Tensors, groups: FeatureGroups, z: Tensor, rows: int
    ) -> Tensor:
        """Weights ``(rows, S)`` of coalitions ``z`` ``(1 or rows, S, F)`` for ``rows``
        surrogates (one per example, or one for the whole batch)."""
        sums = lambda v: group_sums(v, groups, rows)  # noqa: E731
        on = z.to(torch.float32)
        if self.distance_mode == "euclidean":
            gap = sums(tuple((a - b) ** 2 for a, b in zip(x, base)))  # (R, F)
            d2 = gap.sum(1, keepdim=True) - _pick(on, gap)[0]
        else:
            xx, xb = sums(tuple(a * a for a in x)), sums(tuple(a * b for a, b in zip(x, base)))
            bb = sums(tuple(b * b for b in base))
            dot, norm2 = _pick(on, xx - xb, xx - bb)
            dot, norm2 = dot + xb.sum(1, keepdim=True), norm2 + bb.sum(1, keepdim=True)
            eps = 1e-8
            cos = dot / (
                xx.sum(1, keepdim=True).sqrt().clamp_min(eps) * norm2.sqrt().clamp_min(eps)
            )
            d2 = (1 - cos) ** 2
        return torch.exp(-d2 / (2 * self.kernel_width**2))


def _pick(on: Tensor, *per_group: Tensor) -> list[Tensor]:
    """For each ``(R, F)`` table, its sum over the switched-on groups: ``(R, S)`` each."""
    table = torch.stack(per_group, 1).to(on.dtype)  # (R, k, F)
    if on.shape[0] == 1:  # coalitions shared by every row: one product
        out = (table.reshape(-1, on.shape[2]) @ on[0].T).view(*table.shape[:2], on.shape[1])
    else:
        out = table @ on.mT  # (R, k, S): rows are a fast path
    return list(out.to(per_group[0].dtype).unbind(1))


def get_exp_kernel_similarity_function(
    distance_mode: str = "cosine", kernel_width: float = 1.0
) -> Callable[..., float]:
    """LIME's exponential similarity kernel over ``"cosine"`` or ``"euclidean"`` distance.

    The result can be passed as ``similarity_func`` to :class:`Lime` or :class:`LimeBase`.
    """
    return ExpKernel(distance_mode, kernel_width)


def default_perturb_func(original_inp: TensorOrTensors, **kwargs: Any) -> Tensor:
    """A uniformly random coalition: ``(1, num_interp_features)`` of 0/1 (``long``)."""
    if "num_interp_features" not in kwargs:
        raise ArgumentError("default_perturb_func needs the keyword argument num_interp_features")
    device = as_tensors(original_inp)[0].device
    size = (1, int(kwargs["num_interp_features"]))
    return torch.bernoulli(torch.full(size, 0.5)).to(device=device, dtype=torch.long)


def default_from_interp_rep_transform(
    curr_sample: Tensor, original_inputs: TensorOrTensors, **kwargs: Any
) -> TensorOrTensors:
    """The input for coalition ``curr_sample``: switched-off features take the baseline.

    Needs the keyword arguments ``feature_mask`` and ``baselines`` (in the inputs' form).
    """
    if "feature_mask" not in kwargs or "baselines" not in kwargs:
        raise ArgumentError("default_from_interp_rep_transform needs feature_mask and baselines")
    on = curr_sample[0]
    xs, masks = as_tensors(original_inputs), as_tensors(kwargs["feature_mask"], "feature_mask")
    bases = kwargs["baselines"]
    bases = bases if isinstance(bases, tuple | list) else (bases,)
    out = []
    for x, m, b in zip(xs, masks, bases):
        if not isinstance(b, Tensor):  # a number: in the input's dtype unless a float for ids
            b = torch.tensor(b, dtype=None if isinstance(b, float) else x.dtype)
            b = b.to(x.dtype) if x.is_floating_point() else b
        b = b.to(x.device)
        dtype = replaced_dtype(x, b)
        out.append(torch.where(on[m].bool(), x.to(dtype), b.to(dtype)))
    return tuple(out) if isinstance(original_inputs, tuple | list) else out[0]


def construct_feature_mask(
    feature_mask: MaskType, formatted_inputs: Tensors
) -> tuple[Tensors, int]:
    """Masks (ids shifted to start at 0) and the number of interpretable features (max id + 1).

    ``None`` gives one feature per scalar, numbered across all inputs.
    """
    if feature_mask is None:
        masks = default_feature_mask(formatted_inputs)
    else:
        masks = format_feature_mask(feature_mask, formatted_inputs)
        lows = [int(m.min()) for m in masks if m.numel()]
        low = min(lows) if lows else 0
        masks = tuple(m - low for m in masks)
    highs = [int(m.max()) for m in masks if m.numel()]
    return masks, (max(highs) + 1 if highs else 0)
