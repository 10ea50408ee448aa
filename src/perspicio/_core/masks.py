"""Feature masks: which scalars of the inputs are perturbed together.

A feature mask holds one integer group id per scalar of an input, without or with the batch
dimension (first dimension 1 shares the mask across the batch; first dimension N gives each
example its own). Ids are shared across input tensors: scalars of different tensors with the
same id form one feature, perturbed together (Captum 0.9's default). Without a mask every
scalar of every input is its own feature, numbered consecutively across the inputs.

:class:`FeatureGroups` is the validated form every perturbation method works with: it turns
a table of per-feature values into per-scalar masks (:meth:`FeatureGroups.select`) and
per-feature results back into the inputs' shapes (:meth:`FeatureGroups.spread`), with
tensor indexing rather than loops over features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import Tensors
from perspicio._core.validate import ArgumentError

MaskType = None | Tensor | tuple[Tensor, ...]


def default_feature_mask(inputs: Tensors, start: int = 0) -> Tensors:
    """One feature per scalar: ids ``start, start + 1, ...`` running across all inputs.

    Each mask has shape ``(1, *input.shape[1:])`` (shared across the batch).
    """
    masks = []
    for x in inputs:
        count = math.prod(x.shape[1:])  # also for an empty tensor
        masks.append(torch.arange(start, start + count, device=x.device).reshape(1, *x.shape[1:]))
        start += count
    return tuple(masks)


def format_feature_mask(
    feature_mask: MaskType, inputs: Tensors, name: str = "feature_mask"
) -> Tensors:
    """Validated masks, one per input: long tensors with the input's number of dimensions.

    ``None`` gives :func:`default_feature_mask`. A given mask must hold integers (bool is
    read as 0/1), have at most as many dimensions as its input, and broadcast to it with
    every dimension (aligned from the right) either 1 or the input's size; missing leading
    dimensions become 1. Raises ``ValueError``/``TypeError`` naming the offending mask.
    """
    if feature_mask is None:
        return default_feature_mask(inputs)
    items = feature_mask if isinstance(feature_mask, tuple | list) else (feature_mask,)
    if len(items) != len(inputs):
        raise ArgumentError(
            f"{name} must give one mask per input: got {len(items)} for {len(inputs)} inputs"
        )
    return tuple(
        _one_mask(m, x, f"{name}[{i}]" if len(items) > 1 else name)
        for i, (m, x) in enumerate(zip(items, inputs))
    )


def _one_mask(mask: Any, x: Tensor, name: str) -> Tensor:
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer ids, got {type(mask).__name__}")
    if mask.is_complex() or (
        mask.is_floating_point() and not bool((mask == mask.round()).all())  # NaN fails too
    ):
        raise ArgumentError(
            f"{name} must hold integer feature ids, got a tensor of {mask.dtype} that is not "
            "all whole numbers"
        )
    shape, target = tuple(mask.shape), tuple(x.shape)
    fits = len(shape) <= len(target) and all(
        m in (1, t) for m, t in zip(reversed(shape), reversed(target))
    )
    if not fits:
        raise ArgumentError(
            f"{name} has shape {shape}, which does not broadcast to the input's shape {target} "
            "(every dimension must be 1 or the input's size)"
        )
    return mask.to(device=x.device, dtype=torch.long).reshape(
        (1,) * (len(target) - len(shape)) + shape
    )


def count_features(masks: Tensors) -> int:
    """Captum's feature count: the largest id plus one (0 for empty masks)."""
    peaks = [int(m.max()) for m in masks if m.numel()]
    return max(peaks) + 1 if peaks else 0


@dataclass(frozen=True)
class FeatureGroups:
    """Validated feature masks with their ids numbered densely ``0 .. F-1``.

    Attributes:
        masks: the user's ids, one long tensor per input with the input's dimensions (size-1
            dimensions broadcast); first dimension 1 or the batch size.
        ids: ``(F,)`` the distinct ids in increasing order; feature ``j`` has id ``ids[j]``.
        dense: one ``(M, *input.shape[1:])`` long tensor per input (``M`` is 1 or the batch
            size) holding each scalar's feature number ``0 .. F-1``.
        batch_size: the inputs' batch size.
    """

    masks: Tensors
    ids: Tensor
    dense: Tensors
    batch_size: int

    @classmethod
    def build(
        cls, feature_mask: MaskType, inputs: Tensors, name: str = "feature_mask"
    ) -> FeatureGroups:
        """Validate ``feature_mask`` against ``inputs`` (before any model call)."""
        masks = format_feature_mask(feature_mask, inputs, name)
        n = int(inputs[0].shape[0])
        for i, (m, x) in enumerate(zip(masks, inputs)):
            if x.shape[0] != n and m.shape[0] != 1:
                raise ArgumentError(
                    f"{name}[{i}] has shape {tuple(m.shape)}, but input {i} has first dimension "
                    f"{x.shape[0]}, not the batch size {n} (a sparse input): its mask must be "
                    "shared, with first dimension 1"
                )
        device = inputs[0].device
        flat = [m.reshape(-1).to(device) for m in masks if m.numel()]
        ids = torch.unique(torch.cat(flat)) if flat else torch.zeros(0, dtype=torch.long)
        dense = tuple(
            torch.searchsorted(ids.to(m.device), m.contiguous()).expand(m.shape[0], *x.shape[1:])
            for m, x in zip(masks, inputs)
        )
        return cls(masks=masks, ids=ids, dense=dense, batch_size=n)

    @property
    def n_features(self) -> int:
        return int(self.ids.numel())

    @property
    def per_example(self) -> bool:
        """Whether some mask differs between examples (first dimension larger than 1)."""
        return any(d.shape[0] > 1 for d in self.dense)

    def select(self, table: Tensor) -> Tensors:
        """Per-scalar values from per-feature values, for every input.

        Args:
            table: ``(k, F)`` (the same for every example) or ``(k, N, F)`` (per example).

        Returns:
            One ``(k, M, *input.shape[1:])`` tensor per input, ``M`` being 1 or N: each
            scalar gets its feature's entry.
        """
        out = []
        for d in self.dense:
            d = d.to(table.device)
            if table.dim() == 2:
                out.append(table[:, d])
            else:
                rows = torch.arange(table.shape[1], device=table.device)
                rows = rows.reshape(-1, *([1] * (d.dim() - 1)))
                out.append(table[:, rows, d])
        return tuple(out)

    def spread(self, table: Tensor) -> Tensors:
        """Per-feature results ``(R, F)`` laid out in the inputs' shapes: ``(R, *shape[1:])``.

        Row ``r`` of ``table`` belongs to example ``r // (R // N)`` (``R`` is a multiple of
        the batch size N) when masks differ per example; shared masks fit any ``R``.
        """
        n_rows = table.shape[0]
        out = []
        for d in self.dense:
            flat = d.reshape(d.shape[0], -1).to(table.device)
            if flat.shape[0] == 1:
                values = table[:, flat[0]]
            else:
                if n_rows % self.batch_size:
                    raise ArgumentError(
                        f"per-example feature masks need the model output to have one group of "
                        f"rows per example, got {n_rows} rows for {self.batch_size} examples"
                    )
                values = table.gather(1, flat.repeat_interleave(n_rows // self.batch_size, 0))
            out.append(values.reshape(n_rows, *d.shape[1:]).to(d.device))
        return tuple(out)

    def to_ids(self, table: Tensor) -> Tensor:
        """``(R, F)`` per dense feature -> ``(R, max id + 1)`` indexed by id (zeros elsewhere)."""
        width = int(self.ids.max()) + 1 if self.n_features else 0
        full = table.new_zeros(table.shape[0], width)
        full[:, self.ids.to(table.device)] = table
        return full
