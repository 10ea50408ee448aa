"""Gradient-free CAMs: Score-CAM, Ablation-CAM and Eigen-CAM.

Score-CAM and Ablation-CAM weight each channel by what happens to the target score when the
model sees only that channel (Score-CAM) or everything but it (Ablation-CAM): one perturbed
copy of the batch per channel, stacked into forward passes of ``perturbations_per_eval``
channels (by default as many as fit in about 256 MiB; results never depend on it). Eigen-CAM
needs no target at all: it projects the layer's values onto their first principal component.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from perspicio._core.call import Call, TensorOrTensors, Tensors, build_call
from perspicio._core.chunks import chunks, units_in_budget
from perspicio._core.forward import forward_call
from perspicio._core.target import flat_rows
from perspicio._core.validate import ArgumentError, check_chunk_size
from perspicio.gradient.cam import CamLayer, safe_div, weighted_map

_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _nbytes(tensors: Tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _one(values: Tensors, who: str) -> Tensor:
    if len(values) != 1:
        raise ArgumentError(
            f"{who} needs a layer with one tensor of values, this one has {len(values)}"
        )
    return values[0]


def target_scores(forward_func: Any, call: Call, inputs: Tensors | None, k: int) -> Tensor:
    """Target scores ``(k, N)`` of ``k`` stacked copies of the call (perturbation-major).

    ``inputs`` are the stacked inputs (``k * N`` rows); ``None`` repeats the call's own.
    """
    sub = call.repeat(k, inputs=inputs is None)
    out = sub.target.select(forward_call(forward_func, sub, inputs))
    if out.numel() != k * call.batch_size:
        raise ArgumentError(
            f"the target must give one score per example: got {out.numel()} scores for "
            f"{k * call.batch_size} examples"
        )
    return out.detach().reshape(k, call.batch_size)


def perturbed_channel_map(
    call: Call,
    values: Tensor,
    copied: Tensor,
    per_eval: int | None,
    stacked_scores: Callable[[int, int], Tensor],
    weigh: Callable[[Tensor], Tensor],
    sum_channels: bool,
    relu: bool,
) -> Tensor:
    """``Σ_k w_k A_k`` over the channels of ``values`` ``(N, C, *S)``, ``w = weigh(scores)``.

    ``stacked_scores(lo, hi) -> (hi - lo, N)``: the target scores of one perturbed copy of the
    batch per channel in ``[lo, hi)``, stacked in one forward pass; run without gradients over
    chunks of ``per_eval`` channels (``None``: sized from the inputs and ``copied``).
    """
    n_channels = values.shape[1]
    step = units_in_budget(per_eval, 4 * (_nbytes(call.inputs) + _nbytes((copied,))), n_channels)
    with torch.no_grad():
        scores = torch.cat([stacked_scores(lo, hi) for lo, hi in chunks(n_channels, step)]).T
    w = weigh(scores)
    w = w.reshape(*w.shape, *([1] * (values.dim() - 2))).to(values.dtype)
    return weighted_map(w, values, sum_channels, relu)


def check_mode(mode: Any) -> None:
    if mode is not None and not isinstance(mode, str):
        raise TypeError(f"interpolate_mode must be a string or None, got {type(mode).__name__}")


def masked_inputs(values: Tensor, inputs: Tensors) -> list[bool]:
    """Which inputs Score-CAM masks: those with the rank of the layer's values ``(N, C, *S)``."""
    which = [x.dim() == values.dim() and x.dim() >= 3 for x in inputs]
    if not any(which):
        raise ArgumentError(
            f"LayerScoreCam masks the inputs with the layer's channel maps: no input has the "
            f"rank of the layer's values {tuple(values.shape)} (N, C, *spatial)"
        )
    return which


def channel_masks(values: Tensor, x: Tensor, mode: str | None) -> Tensor:
    """Each channel of ``values`` upsampled to ``x``'s spatial size and scaled to [0, 1]."""
    m = values
    if m.shape[2:] != x.shape[2:]:
        m = F.interpolate(
            m, size=tuple(x.shape[2:]), mode=mode or _MODES.get(m.dim() - 2, "nearest")
        )
    flat = m.reshape(*m.shape[:2], math.prod(m.shape[2:]))
    lo = flat.min(2).values.reshape(*m.shape[:2], *([1] * (m.dim() - 2)))
    hi = flat.max(2).values.reshape(lo.shape)
    return safe_div(m - lo, hi - lo).to(x.dtype)


class LayerScoreCam(CamLayer):
    """Score-CAM (Wang et al., 2020, https://arxiv.org/abs/1910.01279).

    Each channel ``A_k`` of the layer, upsampled to the input's size and scaled to [0, 1],
    masks the input; the target score of the masked input ``X ⊙ M_k`` is the channel's
    increase of confidence, and the weights are their softmax over the channels:
    ``map = Σ_k softmax_k(f_c(X ⊙ M_k)) A_k``. Every input with the rank of the (reshaped)
    layer values is masked; the others are passed unchanged.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerScoreCam
        >>> from perspicio.testing import ConvNet
        >>> model = ConvNet()
        >>> cam = LayerScoreCam(model, model.relu2).attribute(torch.rand(2, 1, 8, 8), target=3)
        >>> cam.shape
        torch.Size([2, 1, 8, 8])
    """

    def attribute(
        self,
        inputs: TensorOrTensors,
        target: Any = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = False,
        attr_dim_summation: bool = True,
        perturbations_per_eval: int | None = None,
        interpolate_mode: str | None = None,
    ) -> Tensor:
        """The Score-CAM map of the target output at the layer.

        Args:
            attribute_to_layer_input: use the layer's input instead of its output.
            relu_attributions: keep only the positive part of the map (as in the paper).
            attr_dim_summation: sum over the channel dimension.
            perturbations_per_eval: channels per forward pass (``None``: sized from memory).
            interpolate_mode: how channel maps are upsampled to the input (``None``: linear,
                bilinear or trilinear by the number of spatial dims).
        """
        check_chunk_size(perturbations_per_eval, "perturbations_per_eval")
        check_mode(interpolate_mode)
        call = build_call(inputs, target, additional_forward_args, require_float=True)
        site = self._site(attribute_to_layer_input)
        values = self._layout(_one(site.values(self.forward_func, call), "LayerScoreCam"))
        which = masked_inputs(values, call.inputs)

        def evaluate(lo: int, hi: int) -> Tensor:
            k, stacked = hi - lo, []
            for x, masked in zip(call.inputs, which):
                if masked:  # (N, k, *S) masks -> (k, N, 1, *S) times (N, C_in, *S)
                    m = channel_masks(values[:, lo:hi], x, interpolate_mode)
                    rep = x * m.transpose(0, 1).unsqueeze(2)
                else:
                    rep = x.expand(k, *x.shape)
                stacked.append(rep.reshape(k * x.shape[0], *x.shape[1:]))
            return target_scores(self.forward_func, call, tuple(stacked), k)

        return perturbed_channel_map(
            call, values, values, perturbations_per_eval, evaluate,
            lambda scores: scores.softmax(1), attr_dim_summation, relu_attributions,
        )  # fmt: skip


class LayerAblationCam(CamLayer):
    """Ablation-CAM (Desai & Ramaswamy, WACV 2020,
    https://openaccess.thecvf.com/content_WACV_2020/html/Desai_Ablation-CAM_Visual_Explanations_for_Deep_Convolutional_Network_via_Gradient-free_Localization_WACV_2020_paper.html).

    Each channel is set to zero in turn; its weight is the relative drop of the target score,
    ``w_k = (y_c − y_c^k) / y_c`` (the plain drop where ``y_c = 0``), and
    ``map = Σ_k w_k A_k``. With a ``reshape_transform`` (which must only move elements), the
    elements that land in channel ``k`` are zeroed; elements it drops (a class token) never are.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerAblationCam
        >>> from perspicio.testing import ConvNet
        >>> model = ConvNet()
        >>> LayerAblationCam(model, model.relu2).attribute(torch.rand(2, 1, 8, 8), 3).shape
        torch.Size([2, 1, 8, 8])
    """

    def attribute(
        self,
        inputs: TensorOrTensors,
        target: Any = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = False,
        attr_dim_summation: bool = True,
        perturbations_per_eval: int | None = None,
    ) -> Tensor:
        """The Ablation-CAM map of the target output at the layer.

        Args:
            attribute_to_layer_input: ablate the layer's input instead of its output.
            relu_attributions: keep only the positive part of the map (as in the paper).
            attr_dim_summation: sum over the channel dimension.
            perturbations_per_eval: channels per forward pass (``None``: sized from memory).
        """
        check_chunk_size(perturbations_per_eval, "perturbations_per_eval")
        call = build_call(inputs, target, additional_forward_args)
        site = self._site(attribute_to_layer_input)
        probe = site.probe(self.forward_func, call)
        site = site.bind(probe)
        raw = _one(probe.values, "LayerAblationCam")
        values, where = self._layout(raw), self._channel_positions(raw)
        flat = flat_rows(raw)

        def evaluate(lo: int, hi: int) -> Tensor:
            k = hi - lo
            ablated = flat.unsqueeze(0).repeat(k, 1, 1)  # (k, N, P)
            ablated[torch.arange(k, device=raw.device).unsqueeze(1), :, where[lo:hi]] = 0
            with site.replaced((ablated.reshape(k * raw.shape[0], *raw.shape[1:]),)):
                return target_scores(self.forward_func, call, None, k)

        with torch.no_grad():
            y = target_scores(self.forward_func, call, None, 1).T  # (N, 1)

        def relative_drop(scores: Tensor) -> Tensor:
            return (y - scores) / torch.where(y != 0, y, torch.ones_like(y))

        return perturbed_channel_map(
            call, values, raw, perturbations_per_eval, evaluate, relative_drop,
            attr_dim_summation, relu_attributions,
        )  # fmt: skip

    def _channel_positions(self, raw: Tensor) -> Tensor:
        """``(C, M)``: where each channel's elements lie in one example's flattened values."""
        size = math.prod(raw.shape[1:])
        if self.reshape_transform is None:
            return torch.arange(size, device=raw.device).reshape(raw.shape[1], size // raw.shape[1])
        index = torch.arange(size, dtype=torch.float64, device=raw.device).reshape(
            1, *raw.shape[1:]
        )
        moved = self._layout(index)
        if not bool((moved == moved.round()).all()) or moved.min() < 0 or moved.max() >= size:
            raise ArgumentError(
                "LayerAblationCam needs a reshape_transform that only moves elements "
                "(reshape, permute, slice): it changed their values"
            )
        return moved[0].reshape(moved.shape[1], -1).long()


def principal_projection(values: Tensor, center: bool = True) -> Tensor:
    """The values ``(N, C, *S)`` projected on their first principal direction: ``(N, 1, *S)``.

    Per example, the ``P × C`` matrix of positions by channels (centred per channel with
    ``center``) is decomposed by SVD and multiplied by its first right singular vector ``v``.
    The sign of ``v`` is chosen so that its entries sum to a non-negative number: the map then
    correlates positively with the layer's total activation ``Σ_k A_k``.
    """
    n, c = values.shape[:2]
    m = values.reshape(n, c, math.prod(values.shape[2:])).transpose(1, 2)  # (N, P, C)
    if center:
        m = m - m.mean(1, keepdim=True)
    v = torch.linalg.svd(m, full_matrices=False).Vh[:, 0]  # (N, C)
    v = torch.where(v.sum(1, keepdim=True) < 0, -v, v)
    return (m @ v.unsqueeze(2)).reshape(n, 1, *values.shape[2:])


class LayerEigenCam(CamLayer):
    """Eigen-CAM (Muhammad & Yeasin, 2020, https://arxiv.org/abs/2008.00299).

    The layer's values projected on their first principal component, per example; class
    agnostic (``target`` is accepted for a uniform signature and only validated). An SVD
    fixes the component only up to its sign: perspicio picks the sign that makes the map
    correlate positively with the layer's total activation (see :func:`principal_projection`).
    ``center=True`` (the default) centres each channel first, as principal components
    require; ``center=False`` decomposes the raw values, as in the paper's equations.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerEigenCam
        >>> from perspicio.testing import ConvNet
        >>> model = ConvNet()
        >>> LayerEigenCam(model, model.relu2).attribute(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 1, 8, 8])
    """

    def attribute(
        self,
        inputs: TensorOrTensors,
        target: Any = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = False,
        center: bool = True,
    ) -> Any:
        """The Eigen-CAM map at the layer (one per tensor of the layer's values).

        Args:
            attribute_to_layer_input: use the layer's inputs instead of its output.
            relu_attributions: keep only the positive part of the map.
            center: centre each channel over the positions before the decomposition.
        """
        call = build_call(inputs, target, additional_forward_args)
        values = self._site(attribute_to_layer_input).values(self.forward_func, call)
        maps = [principal_projection(self._layout(v), center) for v in values]
        return self._restore([tuple(F.relu(m) if relu_attributions else m for m in maps)])
