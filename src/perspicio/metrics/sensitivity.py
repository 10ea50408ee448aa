"""Explanation sensitivity: how much an explanation changes under small input noise.

Max-sensitivity is from Yeh et al. (2019, https://arxiv.org/abs/1901.09392); average
sensitivity from Bhatt et al. (2020, https://arxiv.org/abs/2005.00631).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import TensorOrTensors, Tensors, as_tensors, batch_size_of
from perspicio._core.target import flat_rows
from perspicio._core.validate import ArgumentError, check_count
from perspicio._core.wrapped import PerExample, reduce_samples
from perspicio.metrics.sampling import samples_per_chunk


def default_perturb_func(inputs: TensorOrTensors, perturb_radius: float = 0.02) -> Tensors:
    """Add noise drawn uniformly from the L-infinity ball of radius ``perturb_radius``.

    The noise is drawn on the inputs' device, from the global torch generator.

    Example:
        >>> import torch
        >>> from perspicio.metrics import default_perturb_func
        >>> (noisy,) = default_perturb_func(torch.zeros(2, 3), 0.1)
        >>> bool(noisy.abs().max() <= 0.1)
        True
    """
    return tuple(
        x
        + torch.empty(x.shape, dtype=x.dtype, device=x.device).uniform_(
            -perturb_radius, perturb_radius
        )
        for x in as_tensors(inputs)
    )


def _user_form(perturbed: Any, is_tuple: bool) -> TensorOrTensors:
    """Perturbed inputs in the form the user gave the inputs (a tensor or a tuple)."""
    values = as_tensors(perturbed, "the perturbed inputs")
    return values if is_tuple or len(values) > 1 else values[0]


def _flat(explanation: Any, rows: int) -> Tensor:
    parts = as_tensors(explanation, "the explanation")
    for p in parts:
        if p.dim() == 0 or p.shape[0] != rows:
            raise ArgumentError(
                f"explanation_func returned shape {tuple(p.shape)} for {rows} examples: "
                "sensitivity needs one explanation per example (a forward_func that returns "
                "one value for the whole batch gives one for the batch)"
            )
    return torch.cat([flat_rows(p, rows) for p in parts], dim=1)


def _check_perturbed(perturbed: Tensors, tiled: Tensors) -> None:
    for i, (p, x) in enumerate(zip(perturbed, tiled)):
        if p.shape != x.shape:
            raise ArgumentError(
                f"perturb_func returned perturbed inputs[{i}] of shape {tuple(p.shape)} for "
                f"inputs of shape {tuple(x.shape)}: the shapes must match"
            )


def _check_radius(perturb_radius: Any) -> None:
    if isinstance(perturb_radius, bool) or not isinstance(perturb_radius, int | float):
        raise TypeError(f"perturb_radius must be a number, got {perturb_radius!r}")
    if not perturb_radius >= 0:
        raise ArgumentError(f"perturb_radius must be non-negative, got {perturb_radius}")


def _norm(values: Tensor, norm_ord: str | float) -> Tensor:
    # norm_ord is validated up front, so this is 'fro' (the 2-norm of a vector) or a number.
    order = 2.0 if norm_ord == "fro" else float(norm_ord)
    return torch.linalg.vector_norm(values, ord=order, dim=1)


def _check_norm(norm_ord: Any) -> None:
    if norm_ord == "fro" or (isinstance(norm_ord, int | float) and not isinstance(norm_ord, bool)):
        return
    raise ArgumentError(
        f"norm_ord must be 'fro' or a number (the order of the vector norm), got {norm_ord!r}"
    )


def _sensitivity(
    reduce: str,
    explanation_func: Callable[..., Any],
    inputs: TensorOrTensors,
    perturb_func: Callable[..., Any],
    perturb_radius: float,
    n_perturb_samples: int,
    norm_ord: str | float,
    max_examples_per_batch: int | None,
    kwargs: dict[str, Any],
) -> Tensor:
    xs = as_tensors(inputs)
    n = batch_size_of(xs)
    check_count(n_perturb_samples, "n_perturb_samples")
    _check_norm(norm_ord)
    _check_radius(perturb_radius)
    per_chunk = samples_per_chunk(n, max_examples_per_batch)
    takes_radius = len(inspect.signature(perturb_func).parameters) > 1
    per_example = PerExample(kwargs, n)
    with torch.no_grad():
        e_x = _flat(explanation_func(inputs, **kwargs), n)  # (N, D)
        base = _norm(e_x, norm_ord)
        base = torch.where(base == 0, torch.ones_like(base), base)

        def run(start: int, stop: int) -> Tensor:
            k = stop - start
            tiled = tuple(x.repeat_interleave(k, 0) for x in xs)
            arg = tiled if len(tiled) > 1 else tiled[0]
            perturbed = perturb_func(arg, perturb_radius) if takes_radius else perturb_func(arg)
            perturbed = _user_form(perturbed, isinstance(inputs, tuple | list))
            _check_perturbed(as_tensors(perturbed, "perturbed inputs"), tiled)
            e_p = _flat(explanation_func(perturbed, **per_example.repeat(k)), n * k)
            change = _norm(e_x.repeat_interleave(k, 0) - e_p, norm_ord).reshape(n, k)
            return change / base.unsqueeze(1)  # (N, k)

        total = reduce_samples(
            n_perturb_samples, per_chunk, run, "max" if reduce == "max" else "sum"
        )
    return total if reduce == "max" else total / n_perturb_samples


def sensitivity_max(
    explanation_func: Callable[..., TensorOrTensors],
    inputs: TensorOrTensors,
    perturb_func: Callable[..., Any] = default_perturb_func,
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 10,
    norm_ord: str | float = "fro",
    max_examples_per_batch: int | None = None,
    **kwargs: Any,
) -> Tensor:
    """Max-sensitivity ``max_j ||e(x) - e(x + d_j)|| / ||e(x)||`` (Yeh et al., 2019).

    ``explanation_func(inputs, **kwargs)`` is typically an ``attribute`` method. It is called
    once on the inputs, then on batches of perturbed inputs in which each example is
    repeated ``k`` times in place; per-example ``target``, ``additional_forward_args``,
    ``baselines`` and ``feature_mask`` in ``kwargs`` are repeated to match. The perturbed
    inputs come from ``perturb_func(inputs, perturb_radius)`` (or ``perturb_func(inputs)``
    for a one-argument function). Samples are split into chunks of
    ``max_examples_per_batch // N`` samples (at least one) as in Captum, so the same seed gives
    Captum's draws. A zero explanation norm counts as 1. The explanation function receives the
    inputs in the user's form (Captum passes the unperturbed inputs as a tuple).

    Args:
        explanation_func: the explanation to score, usually ``method.attribute``.
        perturb_func: draws perturbed inputs; the default adds uniform noise in an L-inf ball.
        perturb_radius: radius passed to ``perturb_func`` when it takes two arguments.
        n_perturb_samples: perturbations drawn per example.
        norm_ord: ``'fro'`` (the 2-norm) or the order of the vector norm (``inf`` allowed)
            used for the flattened explanations.
        max_examples_per_batch: at most this many perturbed rows per explanation call.
        **kwargs: passed to ``explanation_func`` (``target``, ``baselines``, ...).

    Returns:
        One sensitivity per example, shape ``(N,)``.

    Example:
        >>> import torch
        >>> from perspicio.attr import Saliency
        >>> from perspicio.metrics import sensitivity_max
        >>> from perspicio.testing import ReLUMLP
        >>> sens = sensitivity_max(Saliency(ReLUMLP()).attribute, torch.randn(3, 6), target=0)
        >>> sens.shape
        torch.Size([3])
    """
    return _sensitivity(
        "max",
        explanation_func,
        inputs,
        perturb_func,
        perturb_radius,
        n_perturb_samples,
        norm_ord,
        max_examples_per_batch,
        kwargs,
    )


def sensitivity_avg(
    explanation_func: Callable[..., TensorOrTensors],
    inputs: TensorOrTensors,
    perturb_func: Callable[..., Any] = default_perturb_func,
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 10,
    norm_ord: str | float = "fro",
    max_examples_per_batch: int | None = None,
    **kwargs: Any,
) -> Tensor:
    """Average sensitivity ``mean_j ||e(x) - e(x + d_j)|| / ||e(x)||`` (Bhatt et al., 2020).

    Same arguments, sampling and batching as :func:`sensitivity_max`; the mean replaces the
    maximum over the ``n_perturb_samples`` perturbations.

    Example:
        >>> import torch
        >>> from perspicio.attr import Saliency
        >>> from perspicio.metrics import sensitivity_avg
        >>> from perspicio.testing import ReLUMLP
        >>> x = torch.randn(3, 6)
        >>> sens = sensitivity_avg(Saliency(ReLUMLP()).attribute, x, target=0)
        >>> sens.shape
        torch.Size([3])
    """
    return _sensitivity(
        "mean",
        explanation_func,
        inputs,
        perturb_func,
        perturb_radius,
        n_perturb_samples,
        norm_ord,
        max_examples_per_batch,
        kwargs,
    )
