"""Concept discovery by non-negative factorisation of a layer's activations (CRAFT-style).

Fel et al. (2023), "CRAFT: Concept Recursive Activation FacTorization for Explainability",
https://arxiv.org/abs/2211.10154. The activation vector at every position of a layer (a
pixel of a convolutional feature map, a token of a sequence) describes the patch of input it
sees; a non-negative matrix factorisation ``A ~ U W`` of these vectors gives a bank ``W`` of
concepts, and ``U`` says how much of each concept is present at each position: maps of
where each concept appears. A concept's importance for a class is gradient × coefficient,
``sum_p U[p, k] * dF/dU[p, k]``, where ``dF/dU = dF/dA @ W.T`` (the decomposition is
linear, so no second pass is needed); Fel et al. (2023), "A Holistic Approach to Unifying
Automatic Concept Extraction and Concept Importance Estimation",
https://arxiv.org/abs/2306.07304, discuss this estimator among others.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perspicio._core.call import build_call
from perspicio._core.hooks import check_layer
from perspicio._core.sites import LayerSite, target_objective
from perspicio._core.validate import ArgumentError

_EPS = 1e-10


def nmf(a: Tensor, n_components: int, max_iter: int = 200, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Non-negative ``a (n, C) ~ u (n, k) @ w (k, C)`` by multiplicative updates (Lee & Seung).

    Rows of ``w`` have unit norm (their scale moves to ``u``); the start is seeded.
    """
    g = torch.Generator().manual_seed(seed)
    scale = (a.mean() / n_components).sqrt().item()
    u = torch.rand(a.shape[0], n_components, generator=g, dtype=a.dtype).to(a.device) * scale
    w = torch.rand(n_components, a.shape[1], generator=g, dtype=a.dtype).to(a.device) * scale
    for _ in range(max_iter):
        w = w * (u.T @ a) / (u.T @ u @ w + _EPS)
        u = u * (a @ w.T) / (u @ (w @ w.T) + _EPS)
    norms = w.norm(dim=1, keepdim=True).clamp_min(_EPS)
    return u * norms.T, w / norms


def nmf_codes(a: Tensor, w: Tensor, max_iter: int = 200) -> Tensor:
    """Non-negative ``u`` minimising ``||a - u w||`` for a fixed concept bank ``w``."""
    u = torch.full((a.shape[0], w.shape[0]), a.mean().item() + _EPS, dtype=a.dtype, device=a.device)
    gram, target = w @ w.T, a @ w.T
    for _ in range(max_iter):
        u = u * target / (u @ gram + _EPS)
    return u


def _positions(act: Tensor) -> Tensor:
    """``(N, P, C)``: the activation vector at each position (channels of NCHW, last dim else)."""
    if act.dim() == 4:
        return act.permute(0, 2, 3, 1).reshape(act.shape[0], -1, act.shape[1])
    if act.dim() == 3:
        return act
    if act.dim() == 2:
        return act[:, None]
    raise ArgumentError(
        f"concept discovery needs a (N, C, H, W), (N, T, D) or (N, D) activation, got shape "
        f"{tuple(act.shape)}"
    )


def _maps(codes: Tensor, act: Tensor) -> Tensor:
    """Per-position codes ``(N, P, k)`` laid out like the activation: ``(N, k, *positions)``."""
    n, _, k = codes.shape
    if act.dim() == 4:
        return codes.permute(0, 2, 1).reshape(n, k, act.shape[2], act.shape[3])
    if act.dim() == 3:
        return codes.permute(0, 2, 1)
    return codes[:, 0]


class ConceptDiscovery:
    """Concepts found in a layer by non-negative matrix factorisation (CRAFT, Fel et al. 2023).

    ``fit`` factorises the activation vectors of every position of every input into
    ``n_concepts`` non-negative concepts (``concepts``, shape ``(n_concepts, C)``).
    ``transform`` gives where each concept appears (``(N, n_concepts, H, W)`` for a
    convolutional layer), ``concept_maps`` the same resized to the input, and ``importance``
    how much each concept contributes to a target (gradient × coefficient, summed over
    positions, averaged over inputs). The layer's values must be non-negative (e.g. after a
    ReLU).

    Example:
        >>> import torch
        >>> from perspicio.concept.discovery import ConceptDiscovery
        >>> from perspicio.testing import ConvNet
        >>> model = ConvNet()
        >>> x = torch.rand(6, 1, 8, 8)
        >>> craft = ConceptDiscovery(model, model.relu1, n_concepts=3).fit(x)
        >>> craft.transform(x).shape, craft.importance(x, target=0).shape
        (torch.Size([6, 3, 8, 8]), torch.Size([3]))
    """

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module,
        n_concepts: int = 10,
        attribute_to_layer_input: bool = False,
        max_iter: int = 200,
        seed: int = 0,
    ) -> None:
        check_layer(model, layer)
        if isinstance(n_concepts, bool) or not isinstance(n_concepts, int) or n_concepts < 1:
            raise ArgumentError(f"n_concepts must be a positive int, got {n_concepts!r}")
        self.model, self.layer = model, layer
        self.n_concepts, self.max_iter, self.seed = n_concepts, max_iter, seed
        self._site = LayerSite(layer, attribute_to_layer_input)
        self.concepts: Tensor | None = None

    def _activation(self, inputs: Any, additional_forward_args: Any) -> Tensor:
        call = build_call(inputs, None, additional_forward_args)
        (act, *rest) = self._site.values(self.model, call)
        if rest:
            raise ArgumentError("the layer gives several tensors: pick a layer giving one")
        _check_non_negative(act)
        return act

    def fit(self, inputs: Any, additional_forward_args: Any = None) -> ConceptDiscovery:
        """Learn the concept bank from the activations of ``inputs``."""
        act = self._activation(inputs, additional_forward_args)
        vectors = _positions(act).reshape(-1, _positions(act).shape[-1])
        _, self.concepts = nmf(vectors.detach(), self.n_concepts, self.max_iter, self.seed)
        return self

    def _bank(self) -> Tensor:
        if self.concepts is None:
            raise ArgumentError("ConceptDiscovery has no concepts yet: call fit first")
        return self.concepts

    def _codes(self, act: Tensor) -> Tensor:
        bank = self._bank()
        pos = _positions(act)
        if pos.shape[-1] != bank.shape[1]:
            raise ArgumentError(
                f"the layer gives {pos.shape[-1]} channels, the concepts have {bank.shape[1]}"
            )
        codes = nmf_codes(pos.reshape(-1, pos.shape[-1]).detach(), bank, self.max_iter)
        return codes.reshape(pos.shape[0], pos.shape[1], -1)  # (N, P, k)

    def transform(self, inputs: Any, additional_forward_args: Any = None) -> Tensor:
        """How much of each concept each position holds: ``(N, n_concepts, *positions)``."""
        act = self._activation(inputs, additional_forward_args)
        return _maps(self._codes(act), act)

    def concept_maps(
        self, inputs: Any, additional_forward_args: Any = None, size: tuple[int, ...] | None = None
    ) -> Tensor:
        """:meth:`transform` resized (bilinearly) to ``size``, by default the input's size."""
        maps = self.transform(inputs, additional_forward_args)
        if maps.dim() != 4:
            return maps
        first = inputs[0] if isinstance(inputs, tuple | list) else inputs
        size = tuple(first.shape[-2:]) if size is None else size
        return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)

    def importance(
        self, inputs: Any, target: Any = None, additional_forward_args: Any = None
    ) -> Tensor:
        """Each concept's gradient × coefficient for ``target``, averaged over ``inputs``."""
        bank = self._bank()
        call = build_call(inputs, target, additional_forward_args, require_float=False)
        grads, values, _ = self._site.grads_and_values(target_objective(self.model), call)
        _check_non_negative(values[0])
        codes = self._codes(values[0])  # (N, P, k)
        code_grads = _positions(grads[0]) @ bank.T  # dF/dU = dF/dA W^T, (N, P, k)
        return (codes * code_grads).sum(1).mean(0)


def _check_non_negative(act: Tensor) -> None:
    if (act < 0).any():
        raise ArgumentError(
            f"concept discovery factorises non-negative activations, but the layer gives values "
            f"down to {float(act.min()):.3g}: pick a layer after a ReLU"
        )
