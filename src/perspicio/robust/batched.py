"""Evaluating several perturbed copies of a batch in one forward pass.

Used by :class:`~perspicio.robust.AttackComparator` and
:class:`~perspicio.robust.MinParamPerturbation` (``perturbations_per_eval``): the copies are
grouped by :func:`perspicio._core.chunks.grouped`, concatenated along the batch, the per-example
additional arguments repeated with :meth:`perspicio._core.call.Call.repeat`, and the output cut
back into one piece per copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import Call, as_tensors, format_args
from perspicio._core.target import Target
from perspicio._core.validate import ArgumentError, check_chunk_size


def check_perturbations_per_eval(value: Any) -> None:
    if value is None:
        raise TypeError("perturbations_per_eval must be a positive int, got None")
    check_chunk_size(value, "perturbations_per_eval")


def rows_of(item: Any) -> int:
    """The batch size of a model input: a tensor or a tuple of tensors."""
    return int(item.shape[0] if isinstance(item, Tensor) else item[0].shape[0])


def concat(items: list[Any]) -> Any:
    """Model inputs concatenated along the batch (tensors, or tuples of tensors)."""
    if isinstance(items[0], Tensor):
        return torch.cat(items)
    return tuple(torch.cat(parts) for parts in zip(*items))


def check_stackable(item: Any) -> None:
    """Batching needs each model input to be a tensor or a tuple of tensors."""
    if isinstance(item, Tensor) or (
        isinstance(item, tuple) and item and all(isinstance(t, Tensor) for t in item)
    ):
        return
    raise ArgumentError(
        "perturbations_per_eval > 1 needs the model inputs (after preproc_fn) to be a tensor "
        f"or a tuple of tensors, got {type(item).__name__}"
    )


def run_group(forward_func: Callable[..., Any], items: list[Any], args: Any) -> list[Any]:
    """The model output for each item of ``items``, from one forward pass.

    Each item is passed to ``forward_func`` as one argument (as Captum does), followed by the
    additional forward args (repeated for every copy when there are several).
    """
    extra = format_args(args)
    if len(items) == 1:
        return [forward_func(items[0], *extra)]
    for item in items:
        check_stackable(item)
    call = Call(inputs=as_tensors(items[0]), target=Target(), args=extra)
    out = forward_func(concat(items), *call.repeat(len(items), inputs=False).args)
    outputs, start = [], 0
    for item in items:
        n = rows_of(item)
        outputs.append(out[start : start + n])
        start += n
    return outputs
