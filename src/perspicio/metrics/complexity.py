"""Complexity of an explanation: is the relevance concentrated on a few features?

Sparseness is the Gini index of the absolute attributions (Chalasani et al., 2020,
https://arxiv.org/abs/1810.06583); complexity is the entropy of the fractional contribution
of each feature (Bhatt et al., 2020, https://arxiv.org/abs/2005.00631). Tuple attributions
are concatenated per example.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from perspicio._core.call import TensorOrTensors, as_tensors, batch_size_of


def _magnitudes(attributions: TensorOrTensors) -> Tensor:
    """``|a|`` flattened per example across every tensor: ``(N, D)`` (float)."""
    attrs = as_tensors(attributions, "attributions")
    n = batch_size_of(attrs, "attributions")
    flat = torch.cat([a.reshape(n, -1) for a in attrs], dim=1).abs()
    return flat if flat.is_floating_point() else flat.to(torch.get_default_dtype())


def sparseness(attributions: TensorOrTensors) -> Tensor:
    """Gini index of ``|a|`` per example, in ``[0, 1]`` (Chalasani et al., 2020).

    Scaled by ``D / (D - 1)`` so that both bounds are reached: a one-hot explanation scores 1,
    a constant (or all-zero) one scores 0. (Quantus reports the unscaled value, which is
    ``(D - 1) / D`` times this.) A single feature scores 0.

    Example:
        >>> import torch
        >>> from perspicio.metrics import sparseness
        >>> sparseness(torch.tensor([[0.0, 0.0, 5.0, 0.0], [1.0, 1.0, 1.0, 1.0]]))
        tensor([1., 0.])
    """
    a = _magnitudes(attributions)
    d = a.shape[1]
    if d < 2:
        return torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
    a = torch.sort(a, dim=1).values
    weights = 2 * torch.arange(1, d + 1, dtype=a.dtype, device=a.device) - d - 1
    total = a.sum(1)
    gini = (a * weights).sum(1) / (d - 1) / torch.where(total > 0, total, 1.0)
    return torch.where(total > 0, gini, 0.0)


def complexity(attributions: TensorOrTensors) -> Tensor:
    """Entropy of the fractional contributions ``|a_i| / sum |a|`` (Bhatt et al., 2020).

    Ranges from 0 (all relevance on one feature) to ``log(D)`` (uniform); an all-zero
    explanation counts as uniform.

    Example:
        >>> import torch
        >>> from perspicio.metrics import complexity
        >>> complexity(torch.tensor([[0.0, 3.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0]]))
        tensor([0.0000, 1.3863])
    """
    a = _magnitudes(attributions)
    total = a.sum(1, keepdim=True)
    p = a / torch.where(total > 0, total, 1.0)
    entropy = 0.0 - torch.special.xlogy(p, p).sum(1)  # 0.0 - x: no negative zero
    return torch.where(total.squeeze(1) > 0, entropy, math.log(a.shape[1]))
