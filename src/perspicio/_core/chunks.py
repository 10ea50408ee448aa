"""The one chunking loop behind every batching knob.

``internal_batch_size`` (path methods), ``nt_samples_batch_size`` (NoiseTunnel),
``perturbations_per_eval`` (perturbation sweeps) and ``max_examples_per_batch`` (metrics)
all become a number of *units* per chunk: path steps, noise samples, perturbations or
examples. Results never depend on the chunk size.
"""

from __future__ import annotations

from collections.abc import Iterator

from perspicio._core.validate import ArgumentError, is_int


def check_chunk_size(value: int | None, name: str) -> None:
    """``None`` or a positive int, else a clear error naming the knob."""
    if value is None:
        return
    if not is_int(value):
        raise TypeError(f"{name} must be a positive int or None, got {value!r}")
    if value < 1:
        raise ArgumentError(f"{name} must be at least 1, got {value}")


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
