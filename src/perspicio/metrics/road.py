"""ROAD: remove and debias (Rong et al., 2022, https://arxiv.org/abs/2202.00449).

Removed pixels are not set to a constant (which leaks the removal pattern to the model) but
filled by noisy linear imputation: each removed pixel takes the weighted mean of its eight
neighbours (weight 1/6 for the four direct ones, 1/12 for the diagonals), solved jointly for
all removed pixels, plus Gaussian noise. The sparse linear system is symmetric positive
definite, and is solved for the whole batch at once by conjugate gradients with convolutions
(no per-image loop, no scipy, on the inputs' device).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from perspicio._core.call import Tensors, build_call
from perspicio._core.masks import FeatureGroups
from perspicio._core.validate import ArgumentError
from perspicio.metrics.faithfulness import Curve, check_order, element_ranks
from perspicio.metrics.sampling import score_points

_WEIGHTS = ((1 / 12, 1 / 6, 1 / 12), (1 / 6, 0.0, 1 / 6), (1 / 12, 1 / 6, 1 / 12))


def _neighbours(values: Tensor) -> Tensor:
    """Weighted sum of the 8 neighbours of every pixel (zero outside the image)."""
    b, c, h, w = values.shape
    kernel = torch.tensor(_WEIGHTS, dtype=values.dtype, device=values.device)
    out = F.conv2d(values.reshape(b * c, 1, h, w), kernel.reshape(1, 1, 3, 3), padding=1)
    return out.reshape(b, c, h, w)


def _solve(known: Tensor, u: Tensor, tol: float, max_iter: int | None) -> Tensor:
    """The imputed values (zero where ``u`` is 0), by conjugate gradients.

    The starting point is the solution of the same problem at half the resolution, upsampled
    (a cascade down to 16 pixels): large holes then need few fine iterations.
    """
    h, w = known.shape[2:]
    v = torch.zeros_like(known)
    if min(h, w) >= 16 and bool(u.any()):
        share = F.avg_pool2d(1 - u, 2, ceil_mode=True)  # kept share of each 2x2 block
        coarse_u = (share == 0).to(u.dtype)
        coarse = F.avg_pool2d(known, 2, ceil_mode=True) / share.clamp_min(1e-12) * (1 - coarse_u)
        coarse = coarse + _solve(coarse, coarse_u, max(tol, 1e-3), None)
        v = u * F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    rhs = u * _neighbours(known)  # (B, C, H, W)
    weight_sum = _neighbours(torch.ones_like(known[:1, :1]))  # valid neighbours per pixel

    def apply(values: Tensor) -> Tensor:
        return u * (weight_sum * values - _neighbours(u * values))

    r = rhs - apply(v)
    p = r.clone()
    rs = r.pow(2).sum((2, 3), keepdim=True)
    limit = (tol * tol) * rhs.pow(2).sum((2, 3), keepdim=True).clamp_min(torch.finfo(u.dtype).tiny)
    steps = max_iter if max_iter is not None else 4 * (h + w) + 20
    for it in range(steps):
        # checking convergence costs a host sync: do it every 8 iterations only
        if it % 8 == 0 and bool((rs <= limit).all()):
            break
        ap = apply(p)
        pap = (p * ap).sum((2, 3), keepdim=True)
        alpha = torch.where(pap > 0, rs / torch.where(pap > 0, pap, 1.0), 0.0)
        v = v + alpha * p
        r = r - alpha * ap
        rs_new = r.pow(2).sum((2, 3), keepdim=True)
        p = r + torch.where(rs > 0, rs_new / torch.where(rs > 0, rs, 1.0), 0.0) * p
        rs = rs_new
    return v


def noisy_linear_impute(
    images: Tensor,
    removed: Tensor,
    noise: float = 0.01,
    tol: float = 1e-5,
    max_iter: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill the ``removed`` pixels of ``images`` by noisy linear imputation (Rong et al., 2022).

    Args:
        images: ``(B, C, H, W)``.
        removed: boolean ``(B, 1, H, W)`` or ``(B, C, H, W)`` (a pixel is removed in every
            channel where it is true).
        noise: standard deviation of the Gaussian noise added to the imputed values.
        tol: relative residual at which conjugate gradients stop.
        max_iter: iteration cap (default ``4 * (H + W) + 20``).
        generator: draws the noise (default: the global generator).

    A region of removed pixels with no kept neighbour anywhere gets 0 (plus noise).

    Example:
        >>> import torch
        >>> from perspicio.metrics.road import noisy_linear_impute
        >>> img = torch.ones(1, 1, 3, 3)
        >>> hole = torch.zeros(1, 1, 3, 3, dtype=torch.bool)
        >>> hole[0, 0, 1, 1] = True
        >>> noisy_linear_impute(img, hole, noise=0.0)[0, 0, 1, 1]
        tensor(1.)
    """
    u = removed.expand_as(images).to(images.dtype)
    known = images * (1 - u)
    v = _solve(known, u, tol, max_iter)
    if noise:
        v = v + noise * torch.randn(v.shape, generator=generator, dtype=v.dtype, device=v.device)
    filled = v
    return known + u * filled


def road(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    additional_forward_args: Any = None,
    target: Any = None,
    feature_mask: Tensor | None = None,
    order: str = "morf",
    fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    noise: float = 0.01,
    max_examples_per_batch: int | None = None,
) -> Curve:
    """Remove-and-debias curve (Rong et al., 2022) for image inputs ``(N, C, H, W)``.

    At each fraction, that share of the pixels (or of the groups of a spatial
    ``feature_mask``) is removed in the order of their relevance (the attributions summed over
    channels) and imputed by :func:`noisy_linear_impute`; the curve holds the target score.
    With ``'morf'`` a faithful explanation makes the score drop fast (low AUC); with
    ``'lerf'`` it stays high. The noise is drawn point by point from the global torch
    generator, so results do not depend on ``max_examples_per_batch``.

    Args:
        inputs: one image tensor ``(N, C, H, W)``.
        attributions: ``(N, C, H, W)`` or ``(N, 1, H, W)``.
        feature_mask: integer pixel groups (e.g. superpixels), ``(N or 1, 1, H, W)``.
        order: ``'morf'`` or ``'lerf'``.
        fractions: the shares of pixels removed, each in [0, 1].
        noise: standard deviation of the imputation noise.
        max_examples_per_batch: at most this many model rows per forward pass.

    Returns:
        A :class:`~perspicio.metrics.Curve`; ``auc`` is over the given fractions.

    Example:
        >>> import torch
        >>> from perspicio.metrics import road
        >>> from perspicio.testing import ConvNet
        >>> x = torch.rand(2, 1, 8, 8)
        >>> curve = road(ConvNet(), x, x, target=3, fractions=(0.25, 0.5))
        >>> curve.scores.shape
        torch.Size([2, 2])
    """
    call = build_call(inputs, target, additional_forward_args)
    if call.is_tuple or call.inputs[0].dim() != 4:
        raise ArgumentError(
            f"road needs one image tensor of shape (N, C, H, W), got "
            f"{[tuple(x.shape) for x in call.inputs] if call.is_tuple else tuple(inputs.shape)}"
        )
    x = call.inputs[0]
    pixels = _pixel_relevance(attributions, x)  # (N, 1, H, W)
    groups = FeatureGroups.build(feature_mask, (pixels,))
    morf = check_order(order)
    fracs = _check_fractions(fractions)
    (ranks,) = element_ranks(groups, (pixels,), morf)
    counts = [round(f * groups.n_features) for f in fracs]
    # one seed per point, drawn up front: the noise does not depend on the chunks
    seeds = torch.randint(0, 2**62, (len(counts),)).tolist()

    def make_inputs(start: int, stop: int) -> Tensors:
        filled = []
        for c, seed in zip(counts[start:stop], seeds[start:stop]):
            gen = torch.Generator(x.device).manual_seed(seed)
            filled.append(noisy_linear_impute(x, ranks < c, noise, generator=gen))
        return (torch.cat(filled),)

    table, _ = score_points(forward_func, call, len(counts), make_inputs, max_examples_per_batch)
    values = table.t().to(torch.promote_types(table.dtype, torch.float32))
    grid = torch.tensor(fracs, dtype=values.dtype, device=values.device)
    return Curve(grid, values, torch.trapezoid(values, grid, dim=1))


def _pixel_relevance(attributions: Any, x: Tensor) -> Tensor:
    if not isinstance(attributions, Tensor):
        raise TypeError(f"attributions must be a tensor, got {type(attributions).__name__}")
    ok = attributions.dim() == 4 and attributions.shape[0] == x.shape[0]
    if (
        not ok
        or attributions.shape[2:] != x.shape[2:]
        or attributions.shape[1] not in (1, x.shape[1])
    ):
        raise ArgumentError(
            f"attributions has shape {tuple(attributions.shape)}, which does not match the "
            f"inputs' shape {tuple(x.shape)} (channels may be 1)"
        )
    return attributions.sum(1, keepdim=True)


def _check_fractions(fractions: Any) -> list[float]:
    values = [fractions] if isinstance(fractions, int | float) else list(fractions)
    if not values or any(
        isinstance(f, bool) or not isinstance(f, int | float) or not 0 <= f <= 1 for f in values
    ):
        raise ArgumentError(
            f"fractions must be a non-empty sequence of numbers in [0, 1], got {fractions!r}"
        )
    return [float(f) for f in values]
