"""Localisation: does the explanation point at a known region of interest?

The pointing game is from Zhang et al. (2018, https://arxiv.org/abs/1608.00507); relevance
mass and relevance rank accuracy from Arras et al. (2022, CLEVR-XAI,
https://arxiv.org/abs/2003.07258). ``mask`` marks the ground-truth region (bool or 0/1, one
per attribution tensor, broadcastable to it); tuple attributions are concatenated per example.
For images, sum the attributions over channels first to score pixels rather than values.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import TensorOrTensors, as_tensors, batch_size_of
from perspicio._core.validate import ArgumentError


def _flatten(attributions: TensorOrTensors, mask: Any) -> tuple[Tensor, Tensor]:
    """Attributions ``(N, D)`` (float) and the region ``(N, D)`` (bool)."""
    attrs = as_tensors(attributions, "attributions")
    n = batch_size_of(attrs, "attributions")
    masks = as_tensors(mask, "mask")
    if len(masks) != len(attrs):
        raise ArgumentError(
            f"mask must give one tensor per attribution tensor: got {len(masks)} for {len(attrs)}"
        )
    flat_a, flat_m = [], []
    for i, (a, m) in enumerate(zip(attrs, masks)):
        if m.is_floating_point() and not bool(((m == 0) | (m == 1)).all()):
            raise ArgumentError(f"mask[{i}] must be boolean or hold only 0 and 1")
        try:
            m = torch.broadcast_to(m.to(a.device) != 0, a.shape)
        except RuntimeError:
            raise ArgumentError(
                f"mask[{i}] has shape {tuple(m.shape)}, which does not broadcast to the "
                f"attributions' shape {tuple(a.shape)}"
            ) from None
        flat_a.append(a.reshape(n, -1))
        flat_m.append(m.reshape(n, -1))
    values = torch.cat(flat_a, 1)
    values = values if values.is_floating_point() else values.to(torch.get_default_dtype())
    return values, torch.cat(flat_m, 1)


def pointing_game(attributions: TensorOrTensors, mask: Any) -> Tensor:
    """1 where the maximal attribution lies inside the region, else 0 (Zhang et al., 2018).

    When several elements share the maximum, the score is the share of them inside the
    region (the expected hit of a random tie break), so a constant explanation does not win.

    Example:
        >>> import torch
        >>> from perspicio.metrics import pointing_game
        >>> a = torch.tensor([[0.1, 0.9, 0.2], [0.8, 0.1, 0.3]])
        >>> pointing_game(a, torch.tensor([[False, True, False]]))
        tensor([1., 0.])
    """
    a, m = _flatten(attributions, mask)
    top = a == a.max(1, keepdim=True).values
    return (top & m).sum(1).to(a.dtype) / top.sum(1).to(a.dtype)


def relevance_mass_accuracy(attributions: TensorOrTensors, mask: Any) -> Tensor:
    """Share of the positive relevance that falls inside the region (Arras et al., 2022).

    0 for an explanation with no positive relevance.

    Example:
        >>> import torch
        >>> from perspicio.metrics import relevance_mass_accuracy
        >>> a = torch.tensor([[3.0, 1.0, -2.0, 0.0]])
        >>> relevance_mass_accuracy(a, torch.tensor([[True, False, True, False]]))
        tensor([0.7500])
    """
    a, m = _flatten(attributions, mask)
    pos = a.clamp_min(0)
    total = pos.sum(1)
    inside = (pos * m).sum(1)
    return torch.where(total > 0, inside / torch.where(total > 0, total, 1.0), 0.0)


def relevance_rank_accuracy(attributions: TensorOrTensors, mask: Any) -> Tensor:
    """Share of the ``K`` top-ranked elements inside a region of ``K`` elements (Arras et al.).

    Ties at the ``K``-th value are broken by position. 0 for an empty region.

    Example:
        >>> import torch
        >>> from perspicio.metrics import relevance_rank_accuracy
        >>> a = torch.tensor([[0.9, 0.1, 0.8, 0.7]])
        >>> relevance_rank_accuracy(a, torch.tensor([[True, False, False, True]]))
        tensor([0.5000])
    """
    a, m = _flatten(attributions, mask)
    k = m.sum(1)  # (N,)
    order = torch.argsort(a, dim=1, descending=True, stable=True)
    hits = torch.gather(m, 1, order)  # region membership in rank order
    ranks = torch.arange(a.shape[1], device=a.device).expand_as(a)
    in_top = (hits & (ranks < k.unsqueeze(1))).sum(1).to(a.dtype)
    return torch.where(k > 0, in_top / k.clamp_min(1).to(a.dtype), 0.0)
