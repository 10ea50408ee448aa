"""How metrics batch their model evaluations: on the one chunking loop, never a second one.

Two layouts are used. Monte-Carlo metrics (infidelity, sensitivity) follow Captum: each
example is repeated ``k`` times in place (``[x0, x0, x1, x1]``) and ``perturb_func`` is called
once per chunk of :func:`sample_chunks`, so with the same seed the same random draws are
made. Curve metrics (deletion, insertion, ROAD, faithfulness correlation) are plans for the
perturbation engine (:func:`perspicio.perturbation.sweep.sweep`): whole batches stacked one
per point of the curve (``[x0, x1, x0, x1]``), collected in a ``(points, N)`` score table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch import Tensor

from perspicio._core.call import Call, Tensors
from perspicio._core.chunks import check_chunk_size, chunks, units_per_chunk
from perspicio._core.forward import scores
from perspicio._core.validate import ArgumentError, is_int
from perspicio.perturbation.sweep import AUTO, Evaluate, sweep


def check_n_samples(value: Any, name: str = "n_perturb_samples") -> None:
    """A positive int, else a ``TypeError``/``ValueError`` naming the argument."""
    if not is_int(value):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ArgumentError(f"{name} must be at least 1, got {value}")


def sample_chunks(
    n_samples: int, batch_size: int, max_examples_per_batch: int | None
) -> Iterator[tuple[int, int]]:
    """Ranges of samples per chunk: ``max_examples_per_batch // batch_size`` samples each.

    Captum's split: at least one sample per chunk (a chunk then holds the whole batch once,
    even when that exceeds ``max_examples_per_batch``), at most ``n_samples``.
    """
    check_chunk_size(max_examples_per_batch, "max_examples_per_batch")
    return chunks(n_samples, units_per_chunk(max_examples_per_batch, batch_size))


class _Table:
    """A sweep plan that records the target score of every point: ``(total, N)``."""

    def __init__(self, total: int, make_inputs: Callable[[int, int], Tensors]) -> None:
        self.total = total
        self.perturb = make_inputs
        self.table: Tensor | None = None

    def fold(self, start: int, stop: int, evals: Tensor, base: Tensor) -> None:
        if self.table is None:
            self.table = evals.new_empty(self.total, evals.shape[1])
        self.table[start:stop] = evals


def _target_scores(forward_func: Callable[..., Any], call: Call) -> Evaluate:
    repeated: dict[int, Call] = {1: call}

    def evaluate(values: Tensors, k: int) -> Tensor:
        if k not in repeated:
            repeated[k] = call.repeat(k)
        return scores(forward_func, repeated[k], values)

    return evaluate


def score_points(
    forward_func: Callable[..., Any],
    call: Call,
    n_points: int,
    make_inputs: Callable[[int, int], Tensors],
    max_examples_per_batch: int | None,
) -> tuple[Tensor, Tensor]:
    """Target scores of ``n_points`` modified batches ``(n_points, N)``, and of the call's own
    inputs ``(N,)``.

    ``make_inputs(start, stop)`` returns the model inputs of points ``start..stop-1``, each
    tensor of shape ``((stop - start) * N, ...)`` with the points outermost; it must be a pure
    function of its range. At most ``max_examples_per_batch`` rows (but at least one point)
    go through each forward pass; ``None`` sizes chunks from a memory budget. The result does
    not depend on the chunk size.
    """
    check_chunk_size(max_examples_per_batch, "max_examples_per_batch")
    n = call.batch_size
    per_eval = (
        AUTO if max_examples_per_batch is None else units_per_chunk(max_examples_per_batch, n)
    )
    plan = _Table(n_points, make_inputs)
    base = sweep(_target_scores(forward_func, call), call.inputs, plan, per_eval)
    assert plan.table is not None or n_points == 0
    table = plan.table if plan.table is not None else base.new_empty(0, n)
    return table, base.reshape(n)
