"""Approximation methods for path integrals and the path-integral engine.

A path integral ``∫₀¹ g(start + α (end − start)) dα`` is approximated by a weighted sum over
``n_steps`` points ``αᵢ`` with weights ``wᵢ``. The engine evaluates the gradients for all
points of a chunk of steps in one batched forward/backward pass.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from perspicio._core.call import Call, Tensors
from perspicio._core.chunks import chunks, units_per_chunk
from perspicio._core.validate import ArgumentError, check_chunk_size, check_count

METHODS = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def check_path_args(n_steps: int, method: str, internal_batch_size: int | None = None) -> None:
    """Validate the path arguments before any model call."""
    check_count(n_steps, "n_steps")
    if method not in METHODS:
        raise ArgumentError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "riemann_trapezoid" and n_steps < 2:
        raise ArgumentError("method 'riemann_trapezoid' needs n_steps of at least 2")
    check_chunk_size(internal_batch_size, "internal_batch_size")


def approximation(method: str, n_steps: int) -> tuple[list[float], list[float]]:
    """The points ``α`` in [0, 1] and their weights for ``method`` with ``n_steps`` points."""
    check_path_args(n_steps, method)
    alphas, weights = _nodes(method, n_steps)
    return list(alphas), list(weights)


@functools.lru_cache(maxsize=64)
def _nodes(method: str, n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    # cached: the Gauss-Legendre nodes cost more than a small model's forward pass
    alphas, weights = _compute_nodes(method, n)
    return tuple(alphas), tuple(weights)


def _compute_nodes(method: str, n: int) -> tuple[list[float], list[float]]:
    if method == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(n)
        return [float(a) for a in (nodes + 1) / 2], [float(x) for x in w / 2]
    if method == "riemann_trapezoid":
        weights = [1.0 / (n - 1)] * n
        weights[0] = weights[-1] = 0.5 / (n - 1)
        return [i / (n - 1) for i in range(n)], weights
    shift = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    return [(i + shift) / n for i in range(n)], [1.0 / n] * n


def path_points(starts: Tensors, ends: Tensors, alphas: list[float]) -> Tensors:
    """``start + α (end − start)`` for every α, stacked step-major: ``(k * N, ...)``."""
    out = []
    for s, e in zip(starts, ends):
        a = torch.tensor(alphas, dtype=e.dtype, device=e.device).view(-1, *([1] * e.dim()))
        s = s.expand_as(e).unsqueeze(0)
        out.append(torch.addcmul(s, a, e.unsqueeze(0) - s).reshape(-1, *e.shape[1:]))
    return tuple(out)


def path_chunks(
    call: Call,
    starts: Tensors,
    ends: Tensors,
    alphas: list[float],
    internal_batch_size: int | None = None,
) -> Iterator[tuple[int, int, Call, Tensors]]:
    """The path points in order, a chunk of steps at a time: ``(a, b, call, points)``.

    ``call`` is the call repeated ``b - a`` times and ``points`` are the points of steps
    ``a`` to ``b`` (step-major, ``((b - a) * N, ...)``). A chunk holds at least one step and at
    most ``internal_batch_size`` rows when that allows more than one step.
    """
    n = call.batch_size
    for a, b in chunks(len(alphas), units_per_chunk(internal_batch_size, n)):
        yield a, b, call.repeat(b - a), path_points(starts, ends, alphas[a:b])


GradFn = Callable[[Call, Tensors], Tensors]
"""Gradients at given path points: ``(call repeated k times, points) -> grads``."""


def path_integral(
    grad_fn: GradFn,
    call: Call,
    starts: Tensors,
    ends: Tensors,
    n_steps: int,
    method: str,
    internal_batch_size: int | None = None,
) -> Tensors:
    """``Σᵢ wᵢ ∇f(start + αᵢ (end − start))`` for each example, chunked over the steps."""
    alphas, weights = approximation(method, n_steps)
    n = call.batch_size
    totals: list[Tensor] = []
    for a, b, sub, points in path_chunks(call, starts, ends, alphas, internal_batch_size):
        k = b - a
        grads = grad_fn(sub, points)
        for i, g in enumerate(grads):
            w = torch.tensor(weights[a:b], dtype=g.dtype, device=g.device)
            part = (
                (g.reshape(k, n, math.prod(g.shape[1:])) * w.view(k, 1, 1))
                .sum(0)
                .reshape(n, *g.shape[1:])
            )
            if i < len(totals):
                totals[i] = totals[i] + part
            else:
                totals.append(part)
    return tuple(totals)
