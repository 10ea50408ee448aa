"""The one chunking loop behind every batching knob.

``internal_batch_size`` (path methods), ``nt_samples_batch_size`` (NoiseTunnel),
``perturbations_per_eval`` (perturbation sweeps) and ``max_examples_per_batch`` (metrics)
all become a number of *units* per chunk: path steps, noise samples, perturbations or
examples. Results never depend on the chunk size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def chunks(total: int, per_chunk: int | None) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` ranges covering ``range(total)`` with at most ``per_chunk`` each."""
    step = total if per_chunk is None else max(1, per_chunk)
    for start in range(0, total, max(step, 1)):
        yield start, min(start + step, total)


def units_per_chunk(rows_per_chunk: int | None, rows_per_unit: int) -> int | None:
    """How many units fit in a chunk of ``rows_per_chunk`` model rows (at least one).

    Captum's ``internal_batch_size`` counts rows of the expanded batch; a path step costs one
    row per example, so a chunk holds ``internal_batch_size // N`` steps, at least one.
    """
    if rows_per_chunk is None:
        return None
    return max(1, rows_per_chunk // max(rows_per_unit, 1))


PASS_BYTES = 256 * 2**20
"""What one forward pass of stacked copies may hold when the user gives no chunk size."""


def units_in_budget(per_chunk: int | None, bytes_per_unit: int, total: int) -> int:
    """Units per chunk: ``per_chunk`` when given, else as many as :data:`PASS_BYTES` holds.

    Results never depend on it; ``bytes_per_unit`` is the caller's estimate of what one unit
    (all examples' copies for one perturbation) costs in a forward pass.
    """
    if per_chunk is not None:
        return per_chunk
    return max(1, min(total, PASS_BYTES // max(bytes_per_unit, 1)))


def grouped(items: Iterable[T], per_chunk: int | None) -> Iterator[list[T]]:
    """``items`` in consecutive lists of at most ``per_chunk`` (one list for ``None``).

    The streaming form of :func:`chunks`, for units made one at a time (the perturbed inputs
    of an attack comparison): a group is built only when the previous one has been used, so a
    caller may stop early without making the rest.
    """
    it = iter(items)
    while group := list(islice(it, per_chunk)):
        yield group
