"""The geometry the iterative attacks share: masked and sign steps, norm balls, per-example picks.

Every function works on one tensor (or a tuple of tensors sharing the batch dim 0) and keeps
each example (a slice along dim 0) separate.
"""

from __future__ import annotations

import torch
from torch import Tensor

from perspicio._core.call import Tensors

Masks = tuple[Tensor | None, ...]
"""One mask per input (``None``: every element may move)."""


def masked(step: Tensor, mask: Tensor | None) -> Tensor:
    return step if mask is None else step * mask


def rows(flag: Tensor, x: Tensor) -> Tensor:
    """A per-example flag (or value) shaped to broadcast against ``x``."""
    return flag.reshape(-1, *([1] * (x.dim() - 1)))


def pick(flag: Tensor, a: Tensors, b: Tensors) -> Tensors:
    """``a`` where ``flag`` (per example), else ``b``."""
    return tuple(torch.where(rows(flag, x), x, y) for x, y in zip(a, b))


def sign_step(
    xs: Tensors,
    grads: Tensors,
    step: float,
    targeted: bool,
    masks: Masks,
    zero_thresh: float,
) -> Tensors:
    """``x ± step * sign(grad)`` (minus when targeted), only where ``|grad| > zero_thresh``."""
    sign = -1.0 if targeted else 1.0
    return tuple(
        torch.where(g.abs() > zero_thresh, x + masked(sign * step * torch.sign(g), m), x)
        for x, g, m in zip(xs, grads, masks)
    )


def project(center: Tensor, x: Tensor, radius: float, norm: str) -> Tensor:
    """``x`` moved into the ``norm`` ball of ``radius`` around ``center`` (per example)."""
    diff = x - center
    if norm == "Linf":
        return center + diff.clamp(-radius, radius)
    # renorm rescales every example (a slice along dim 0) whose L2 norm exceeds radius
    return center + torch.renorm(diff, 2, 0, radius)


def random_point(center: Tensor, radius: float, norm: str, mask: Tensor | None) -> Tensor:
    """A point drawn uniformly from the ``norm`` ball of ``radius`` around ``center``.

    For L2 the direction is a normalised Gaussian and the radius ``radius * U ** (1 / d)``
    (``d`` elements per example), which is uniform in the ball.
    """
    if norm == "Linf":
        return center + masked(torch.rand_like(center) * 2 * radius - radius, mask)
    n = center.shape[0]
    u = torch.randn_like(center).reshape(n, -1)
    direction = u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)
    r = torch.rand(n).to(device=center.device, dtype=center.dtype) ** (1.0 / u.shape[1])
    return center + masked((radius * r[:, None] * direction).reshape(center.shape), mask)
