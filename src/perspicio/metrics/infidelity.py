"""Explanation infidelity (Yeh et al., 2019, https://arxiv.org/abs/1901.09392)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import (
    BaselineType,
    TensorOrTensors,
    Tensors,
    as_tensors,
    build_call,
    normalize_baselines,
)
from perspicio._core.forward import scores
from perspicio._core.target import flat_rows
from perspicio._core.validate import ArgumentError, check_count
from perspicio._core.wrapped import PerExample, reduce_samples
from perspicio.metrics.sampling import samples_per_chunk

PerturbFunc = Callable[..., Any]


def _safe_div(num: Tensor, den: Tensor | float) -> Tensor:
    """``num / den`` with 1 in place of every zero denominator."""
    if not isinstance(den, Tensor):
        return num / (den if den != 0 else 1.0)
    return num / torch.where(den != 0, den, torch.ones_like(den))


def infidelity_perturb_func_decorator(
    multiply_by_inputs: bool = True,
) -> Callable[[PerturbFunc], Callable[..., tuple[Tensors, Tensors]]]:
    """Turn a function returning perturbed inputs into one returning ``(I, perturbed)``.

    The perturbation ``I`` is ``inputs - perturbed`` for local attributions
    (``multiply_by_inputs=False``: Saliency, Guided Backprop, ...) and
    ``(inputs - perturbed) / (inputs - baselines)`` for global ones (a zero denominator
    counts as 1), so that ``attribution . I`` is comparable with the change of the output.

    Example:
        >>> import torch
        >>> from perspicio.metrics import infidelity_perturb_func_decorator
        >>> @infidelity_perturb_func_decorator(multiply_by_inputs=False)
        ... def halve(x):
        ...     return x / 2
        >>> perturbation, perturbed = halve(torch.ones(1, 2))
        >>> perturbation[0]
        tensor([[0.5000, 0.5000]])
    """

    def decorate(perturb_func: PerturbFunc) -> Callable[..., tuple[Tensors, Tensors]]:
        def with_perturbations(inputs: Any, baselines: Any = None) -> tuple[Tensors, Tensors]:
            perturbed = (
                perturb_func(inputs) if baselines is None else perturb_func(inputs, baselines)
            )
            xs = as_tensors(inputs)
            pxs = as_tensors(perturbed, "the perturbed inputs")
            refs = baselines if isinstance(baselines, tuple) else (baselines,) * len(xs)
            if not multiply_by_inputs:
                return tuple(x - p for x, p in zip(xs, pxs)), pxs
            return tuple(
                _safe_div(x - p, x if b is None else x - b) for x, p, b in zip(xs, pxs, refs)
            ), pxs

        return with_perturbations

    return decorate


def _perturb_args(inputs: Tensors, baselines: Any, k: int) -> tuple[Any, Any]:
    """What ``perturb_func`` receives for ``k`` samples per example (Captum's layout)."""
    xs = tuple(x.repeat_interleave(k, 0) for x in inputs)
    if baselines is None:
        return (xs if len(xs) > 1 else xs[0]), None
    bs = PerExample({"baselines": baselines}, inputs[0].shape[0]).repeat(k)["baselines"]
    return (xs, bs) if len(xs) > 1 else (xs[0], bs[0])


def _perturb(
    perturb_func: PerturbFunc, inputs: Tensors, baselines: Any, k: int
) -> tuple[Tensors, Tensors]:
    x, b = _perturb_args(inputs, baselines, k)
    out = perturb_func(x) if b is None else perturb_func(x, b)
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise ArgumentError(
            "perturb_func must return (perturbations, perturbed_inputs); decorate a function "
            "that returns only the perturbed inputs with infidelity_perturb_func_decorator"
        )
    perturbations = as_tensors(out[0], "perturbations")
    perturbed = as_tensors(out[1], "perturbed inputs")
    if len(perturbations) != len(inputs) or len(perturbed) != len(inputs):
        raise ArgumentError(
            f"perturb_func returned {len(perturbations)} perturbations and {len(perturbed)} "
            f"perturbed inputs for {len(inputs)} inputs"
        )
    for i, (p, px, x) in enumerate(zip(perturbations, perturbed, inputs)):
        want = (x.shape[0] * k, *x.shape[1:])
        for what, t in (("perturbations", p), ("perturbed inputs", px)):
            if tuple(t.shape) != want:
                raise ArgumentError(
                    f"perturb_func returned {what}[{i}] of shape {tuple(t.shape)} for inputs "
                    f"of shape {want} ({k} samples of each example): the shapes must match"
                )
    return perturbations, perturbed


def _one_per_example(scores: Tensor, rows: int) -> Tensor:
    """The model's scores, checked to hold one value per example."""
    if scores.dim() != 1 or scores.shape[0] != rows:
        raise ArgumentError(
            f"infidelity needs one model output per example (choose it with target), but "
            f"forward_func gave shape {tuple(scores.shape)} for a batch of {rows} rows (one value for "
            "the whole batch cannot be compared example by example)"
        )
    return scores


def check_attributions(attributions: Any, inputs: Tensors) -> Tensors:
    """Attributions as a tuple with exactly the inputs' shapes, else a ``ValueError``."""
    attrs = as_tensors(attributions, "attributions")
    if len(attrs) != len(inputs):
        raise ArgumentError(
            f"attributions has {len(attrs)} tensors but inputs has {len(inputs)}: give one "
            "attribution tensor per input"
        )
    for i, (a, x) in enumerate(zip(attrs, inputs)):
        if a.shape != x.shape:
            raise ArgumentError(
                f"attributions[{i}] has shape {tuple(a.shape)} but inputs[{i}] has shape "
                f"{tuple(x.shape)}: they must match"
            )
    return attrs


def infidelity(
    forward_func: Callable[..., Tensor],
    perturb_func: PerturbFunc,
    inputs: TensorOrTensors,
    attributions: TensorOrTensors,
    baselines: BaselineType = None,
    additional_forward_args: Any = None,
    target: Any = None,
    n_perturb_samples: int = 10,
    max_examples_per_batch: int | None = None,
    normalize: bool = False,
) -> Tensor:
    """Expected squared error ``E[(a . I - (f(x) - f(x - I)))^2]`` (Yeh et al., 2019).

    ``perturb_func(inputs[, baselines])`` draws perturbations for a batch in which each example
    is repeated ``k`` times in place, and returns ``(perturbations, perturbed_inputs)`` (tuples
    for tuple inputs); baselines are passed only when given. The samples are split into
    chunks of ``max_examples_per_batch // N`` samples (at least one), exactly as Captum does, so
    the same seed gives Captum's draws; the unperturbed output is computed once, in the same
    forward pass as the first chunk.

    Args:
        perturb_func: draws perturbations; see :func:`infidelity_perturb_func_decorator`.
        attributions: the explanation to score, with the inputs' shapes.
        n_perturb_samples: perturbations drawn per example.
        max_examples_per_batch: at most this many perturbed rows per forward pass.
        normalize: rescale the attributions by the least-squares optimal
            ``beta = E[a.I (f(x) - f(x - I))] / E[(a.I)^2]`` first, which makes the score
            invariant to the attributions' scale.

    Returns:
        One infidelity per example, shape ``(N,)``.

    Example:
        >>> import torch
        >>> from perspicio.metrics import infidelity
        >>> model = torch.nn.Linear(3, 1)
        >>> x = torch.randn(2, 3)
        >>> exact = model.weight.detach() * torch.ones_like(x)  # the gradient, times I
        >>> def noise(inputs):
        ...     i = torch.randn_like(inputs)
        ...     return i, inputs - i
        >>> bool(infidelity(model, noise, x, exact).abs().max() < 1e-6)
        True
    """
    call = build_call(inputs, target, additional_forward_args)
    attrs = check_attributions(attributions, call.inputs)
    check_count(n_perturb_samples, "n_perturb_samples")
    user_baselines = None
    if baselines is not None:
        normalize_baselines(
            baselines, call.inputs
        )  # validation only: perturb_func gets them as given
        user_baselines = _as_tuple(baselines)
    n = call.batch_size
    per_chunk = samples_per_chunk(n, max_examples_per_batch)
    f_x: Tensor | None = None

    def run(start: int, stop: int) -> list[Tensor]:
        nonlocal f_x
        k = stop - start
        pert, perturbed = _perturb(perturb_func, call.inputs, user_baselines, k)
        if f_x is None and _fusable(call.inputs, perturbed):
            # the unperturbed rows ride along with the first chunk: one pass, not two
            both = _one_per_example(scores(forward_func, call.repeat(k + 1, interleave=True),
                          _with_originals(call.inputs, perturbed, k)), n * (k + 1))  # fmt: skip
            both = both.reshape(n, k + 1)
            f_x, f_p = both[:, 0], both[:, 1:].reshape(-1)
        else:
            f_x = _one_per_example(scores(forward_func, call), n) if f_x is None else f_x
            f_p = _one_per_example(
                scores(forward_func, call.repeat(k, interleave=True), perturbed), n * k
            )
        diff = (f_x.repeat_interleave(k) - f_p).reshape(n, k)
        dots = [flat_rows(a.repeat_interleave(k, 0) * p, n * k).sum(1) for a, p in zip(attrs, pert)]
        return _terms(torch.stack(dots).sum(0).reshape(n, k), diff, normalize)

    with torch.no_grad():
        sums = reduce_samples(n_perturb_samples, per_chunk, run)
    if not normalize:
        return sums[0] / n_perturb_samples
    aa, ab, bb = sums
    beta = _safe_div(ab, aa)
    return (beta * beta * aa - 2 * beta * ab + bb) / n_perturb_samples


def _fusable(inputs: Tensors, perturbed: Tensors) -> bool:
    return all(x.dtype == p.dtype and x.device == p.device for x, p in zip(inputs, perturbed))


def _with_originals(inputs: Tensors, perturbed: Tensors, k: int) -> Tensors:
    """Each example followed by its ``k`` perturbed copies: ``k + 1`` rows per example."""
    return tuple(
        torch.cat([x.unsqueeze(1), p.reshape(x.shape[0], k, *x.shape[1:])], 1).flatten(0, 1)
        for x, p in zip(inputs, perturbed)
    )


def _terms(dot: Tensor, diff: Tensor, normalize: bool) -> list[Tensor]:
    """Per-sample terms ``(N, k)`` whose sums over the samples give the metric."""
    # Normalisation needs the sums of a^2, ab and b^2 over all samples before beta is known.
    if normalize:
        return [dot.pow(2), dot * diff, diff.pow(2)]
    return [(dot - diff).pow(2)]


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,)
