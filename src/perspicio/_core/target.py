"""Target selection: one function for every algorithm.

A target says which scalar of the model output is explained for each example. Accepted
forms (Captum's, plus a callable):

- ``None``: the output already has one value per example (``(N,)`` or ``(N, 1)``), or is one
  scalar for the whole batch;
- an ``int`` or a one-element tensor: the same output index for every example;
- a ``tuple`` of ints: an index into the output dims after the batch dim;
- a list of ints, a list of tuples or a 1-D tensor of length N: one index per example;
- a callable ``output -> (N,) scores`` (segmentation, detection, multi-output models).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from perspicio._core.validate import ArgumentError, plain_ints


@dataclass(frozen=True)
class Target:
    """A normalised target. Exactly one of ``index``, ``per_example`` and ``fn`` is set, or
    none of them for ``target=None``."""

    index: tuple[int, ...] | None = None
    per_example: Tensor | None = None  # (N, k) long: one k-dim index per example
    fn: Callable[[Tensor], Tensor] | None = None

    @property
    def is_none(self) -> bool:
        return self.index is None and self.per_example is None and self.fn is None

    def repeat(self, times: int, interleave: bool = False) -> Target:
        if self.per_example is None:
            return self
        pe = self.per_example
        pe = pe.repeat_interleave(times, 0) if interleave else pe.repeat(times, 1)
        return Target(per_example=pe)

    def rows(self, rows: slice | Tensor, n: int) -> Target:
        if self.per_example is None:
            return self
        return Target(per_example=self.per_example[rows])

    def select(self, output: Tensor) -> Tensor:
        """Pick one score per example from ``output``; see :func:`select_target`."""
        return select_target(output, self)


def flat_rows(t: Tensor, n: int | None = None) -> Tensor:
    """``t`` as ``(n, -1)`` (``n`` defaults to its first dimension), also for an empty batch,
    where ``reshape(0, -1)`` is ambiguous."""
    n = t.shape[0] if n is None else n
    return t.reshape(n, t.numel() // n if n else math.prod(t.shape[1:]))


def normalize_target(target: Any, batch_size: int) -> Target:
    """Validate ``target`` (any accepted form) against the batch size, before any model call."""
    target = plain_ints(target)
    if target is None:
        return Target()
    if callable(target) and not isinstance(target, Tensor):
        return Target(fn=target)
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex():
            raise TypeError(f"target must hold integer indices, got a tensor of {target.dtype}")
        if target.numel() == 1:
            return Target(index=(int(target.item()),))
        if target.dim() != 1:
            raise ArgumentError(
                f"a target tensor must be 1-D with one index per example, got shape "
                f"{tuple(target.shape)}"
            )
        return _per_example([[int(t)] for t in target.tolist()], batch_size)
    if isinstance(target, bool):
        raise TypeError("target must be an int, a tuple, a list, a tensor or a callable, not bool")
    if isinstance(target, int):
        return Target(index=(target,))
    if isinstance(target, tuple):
        _check_ints(target, "target")
        return Target(index=tuple(int(t) for t in target))
    if isinstance(target, list):
        rows = [list(t) if isinstance(t, tuple) else [t] for t in target]
        for r in rows:
            _check_ints(tuple(r), "target")
        return _per_example(rows, batch_size)
    raise TypeError(
        f"target must be None, an int, a tuple, a list, a tensor or a callable, got "
        f"{type(target).__name__}"
    )


def _check_ints(values: tuple[Any, ...], name: str) -> None:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | Tensor):
            raise TypeError(f"{name} indices must be ints, got {v!r}")


def _per_example(rows: list[list[Any]], batch_size: int) -> Target:
    if len(rows) != batch_size:
        raise ArgumentError(
            f"target gives {len(rows)} indices but the batch has {batch_size} examples "
            "(give one per example, or a single int for all)"
        )
    if len({len(r) for r in rows}) > 1:
        raise ArgumentError("every per-example target must have the same number of indices")
    table = torch.tensor([[int(v) for v in r] for r in rows], dtype=torch.long)
    return Target(per_example=table.reshape(len(rows), len(rows[0]) if rows else 1))


def _check_range(index: tuple[int, ...] | Tensor, shape: torch.Size) -> None:
    dims = tuple(shape[1:])
    k = len(index) if isinstance(index, tuple) else int(index.shape[1])
    if k > len(dims):
        raise ArgumentError(
            f"target has {k} indices but the model output has shape {tuple(shape)} "
            f"({len(dims)} dims after the batch)"
        )
    for d in range(k):
        if isinstance(index, tuple):
            lo = hi = index[d]
        elif index.shape[0] == 0:  # an empty batch
            continue
        else:
            col = index[:, d]
            lo, hi = int(col.min()), int(col.max())
        if lo < -dims[d] or hi >= dims[d]:
            raise ArgumentError(
                f"target index {hi if hi >= dims[d] else lo} is out of range for model output "
                f"of shape {tuple(shape)} (dim {d + 1} has size {dims[d]})"
            )


def select_target(output: Tensor, target: Target) -> Tensor:
    """One score per example (shape ``(N,)``), or the output itself if it is one scalar."""
    if not isinstance(output, Tensor):
        raise TypeError(
            f"the model must return a tensor, got {type(output).__name__}; wrap models that "
            "return tuples, dicts or ModelOutput objects"
        )
    if target.fn is not None:
        scores = target.fn(output)
        if not isinstance(scores, Tensor) or scores.dim() != 1 or scores.shape[0] != len(output):
            got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise ArgumentError(
                f"a callable target must return one score per example, shape "
                f"({len(output)},), got {got}"
            )
        return scores
    if target.index is not None:
        _check_range(target.index, output.shape)
        where: tuple[Any, ...] = (slice(None), *target.index)
        return flat_rows(output[where]).sum(1)
    if target.per_example is not None:
        _check_range(target.per_example, output.shape)
        if len(target.per_example) != len(output):
            raise ArgumentError(
                f"target has {len(target.per_example)} rows for a model output of "
                f"{len(output)} rows"
            )
        idx = target.per_example.to(output.device)
        rows = torch.arange(len(output), device=output.device)
        where_rows: tuple[Any, ...] = (rows, *idx.unbind(1))
        picked = output[where_rows]
        return flat_rows(picked, len(output)).sum(1)
    if output.dim() == 0:
        return output
    if output.dim() > 1 and output[0].numel() != 1:
        raise ArgumentError(
            f"the model output has shape {tuple(output.shape)}, more than one value per "
            "example: give a target to say which one to explain"
        )
    return output.reshape(len(output))
