"""Grad-CAM, Guided Grad-CAM and the machinery every CAM of the family shares.

A class activation map (CAM) weights the channels of a layer's values ``A`` (shape
``(N, C, *S)``) and sums them: ``map = Σ_k w_k ⊙ A_k``. The methods differ only in the weights
``w`` (one number per channel, or one per position), computed from the target's gradient ``g``
at the layer (:class:`GradientCam`) or from extra forward passes (``cam_free``). Layers whose
values are not channel-first (a vision transformer's ``(N, tokens, C)``) are brought to
``(N, C, H, W)`` by a ``reshape_transform`` given to the constructor; :func:`vit_reshape` builds
the usual one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perspicio._core.attribution import (
    GradientAttribution,
    LayerAttribution,
    check_single_layer,
)
from perspicio._core.call import TensorOrTensors, Tensors, build_call
from perspicio._core.sites import target_objective
from perspicio._core.validate import ArgumentError

ReshapeTransform = Callable[[Tensor], Tensor]
"""Maps a layer's values ``(N, ...)`` to channel-first ``(N, C, *S)`` by moving elements only."""


def spatial_sum(t: Tensor) -> Tensor:
    """Sum over the dims after the channel dim, kept (``(N, C)`` values have none)."""
    return t.sum(dim=tuple(range(2, t.dim())), keepdim=True) if t.dim() > 2 else t


def spatial_mean(t: Tensor) -> Tensor:
    """Mean over the dims after the channel dim, kept (``(N, C)`` values have none)."""
    return t.mean(dim=tuple(range(2, t.dim())), keepdim=True) if t.dim() > 2 else t


def safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den``, 0 where ``den`` is 0."""
    nonzero = den != 0
    return torch.where(nonzero, num / torch.where(nonzero, den, torch.ones_like(den)), 0.0)


def weighted_map(weights: Tensor, values: Tensor, sum_channels: bool, relu: bool) -> Tensor:
    """``weights ⊙ values``, summed over channels (kept as a dim of size 1), then ReLU."""
    cam = weights * values
    if sum_channels:
        cam = cam.sum(dim=1, keepdim=True)
    return F.relu(cam) if relu else cam


def vit_reshape(height: int, width: int, drop_tokens: int = 1) -> ReshapeTransform:
    """A ``reshape_transform`` for a vision transformer's ``(N, tokens, C)`` layer values.

    The first ``drop_tokens`` tokens (the class token) are dropped and the remaining
    ``height * width`` patch tokens laid out as ``(N, C, height, width)``, row by row.

    Example:
        >>> import torch
        >>> vit_reshape(2, 3)(torch.zeros(4, 7, 5)).shape
        torch.Size([4, 5, 2, 3])
    """

    def transform(t: Tensor) -> Tensor:
        if t.dim() != 3 or t.shape[1] != drop_tokens + height * width:
            raise ArgumentError(
                f"vit_reshape({height}, {width}, drop_tokens={drop_tokens}) needs layer values "
                f"of shape (N, {drop_tokens + height * width}, C), got {tuple(t.shape)}"
            )
        return t[:, drop_tokens:].reshape(t.shape[0], height, width, t.shape[2]).permute(0, 3, 1, 2)

    return transform


class CamLayer(LayerAttribution):
    """What every CAM has: one layer, and an optional ``reshape_transform`` of its values."""

    def __init__(
        self,
        forward_func: Any,
        layer: nn.Module,
        device_ids: list[int] | None = None,
        reshape_transform: ReshapeTransform | None = None,
    ) -> None:
        check_single_layer(layer, type(self).__name__)
        if reshape_transform is not None and not callable(reshape_transform):
            raise TypeError(
                f"reshape_transform must be a callable or None, got {type(reshape_transform).__name__}"
            )
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        self.reshape_transform = reshape_transform

    def _layout(self, t: Tensor) -> Tensor:
        """``t`` channel-first: through ``reshape_transform`` when there is one."""
        if self.reshape_transform is None:
            return t
        out = self.reshape_transform(t)
        if not isinstance(out, Tensor):
            raise TypeError(f"reshape_transform must return a tensor, got {type(out).__name__}")
        if out.dim() < 2 or out.shape[0] != t.shape[0]:
            raise ArgumentError(
                f"reshape_transform must keep the batch dim and give (N, C, ...): it mapped "
                f"{tuple(t.shape)} to {tuple(out.shape)}"
            )
        return out


class GradientCam(CamLayer, GradientAttribution):
    """A CAM whose weights come from the target's gradient at the layer.

    Subclasses define :meth:`weights`; ``attribute`` is shared.
    """

    @staticmethod
    def weights(grads: Tensor, values: Tensor) -> Tensor:
        """Weights broadcastable to ``values`` (``(N, C, 1, ...)`` or ``(N, C, *S)``)."""
        raise NotImplementedError

    def attribute(
        self,
        inputs: TensorOrTensors,
        target: Any = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = False,
        attr_dim_summation: bool = True,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """The class activation map of the target output at the layer.

        Args:
            attribute_to_layer_input: use the layer's inputs instead of its output.
            relu_attributions: keep only the positive part of the map (as in the papers).
            attr_dim_summation: sum over the channel dimension (otherwise one weighted map
                per channel).
            grad_kwargs: passed to ``torch.autograd.grad``.
        """
        call = build_call(inputs, target, additional_forward_args)
        site = self._site(attribute_to_layer_input)
        grads, values, _ = site.grads_and_values(
            target_objective(self.forward_func), call, grad_kwargs
        )
        return self._restore([self._maps(grads, values, attr_dim_summation, relu_attributions)])

    def _maps(self, grads: Tensors, values: Tensors, sum_channels: bool, relu: bool) -> Tensors:
        out = []
        for g, v in zip(grads, values):
            g, v = self._layout(g), self._layout(v)
            out.append(weighted_map(self.weights(g, v), v, sum_channels, relu))
        return tuple(out)


class LayerGradCam(GradientCam):
    """Grad-CAM (Selvaraju et al., 2017, https://arxiv.org/abs/1610.02391).

    Each channel of the layer's output is weighted by the mean of the target's gradient over
    that channel's spatial positions; the weighted channels are summed (with
    ``attr_dim_summation``, the default) into one map per example, of the layer's spatial
    size. Upsample it to the input's size with :meth:`LayerAttribution.interpolate`.
    ``reshape_transform`` (a perspicio extension) brings other layouts to ``(N, C, *S)``.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerAttribution, LayerGradCam
        >>> from perspicio.testing import ConvNet
        >>> model = ConvNet()
        >>> x = torch.rand(2, 1, 8, 8)
        >>> cam = LayerGradCam(model, model.conv2).attribute(x, target=3, relu_attributions=True)
        >>> cam.shape, LayerAttribution.interpolate(cam, (8, 8), "bilinear").shape
        (torch.Size([2, 1, 8, 8]), torch.Size([2, 1, 8, 8]))
    """

    @staticmethod
    def weights(grads: Tensor, values: Tensor) -> Tensor:
        return spatial_mean(grads)


class GuidedGradCam(GradientAttribution):
    """Guided Grad-CAM (Selvaraju et al., 2017, https://arxiv.org/abs/1610.02391).

    Guided Backpropagation times the positive Grad-CAM map of ``layer``, upsampled to each
    input's spatial size with ``interpolate_mode``. An input the map cannot be upsampled to
    (one without spatial dimensions, say) gets an empty tensor and a warning, as in Captum.

    Example:
        >>> import torch
        >>> from perspicio.attr import GuidedGradCam
        >>> from perspicio.testing import ConvNet
        >>> model = ConvNet()
        >>> GuidedGradCam(model, model.conv2).attribute(torch.rand(2, 1, 8, 8), target=3).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self, model: nn.Module, layer: nn.Module, device_ids: list[int] | None = None
    ) -> None:
        # the public name, imported late: perspicio.attr imports this module
        from perspicio.attr import GuidedBackprop

        check_single_layer(layer, "GuidedGradCam")
        GradientAttribution.__init__(self, model)
        self.grad_cam = LayerGradCam(model, layer, device_ids)
        self.guided_backprop = GuidedBackprop(model)

    def attribute(
        self,
        inputs: TensorOrTensors,
        target: Any = None,
        additional_forward_args: Any = None,
        interpolate_mode: str = "nearest",
        attribute_to_layer_input: bool = False,
    ) -> TensorOrTensors:
        """Guided Backpropagation × upsampled ReLU(Grad-CAM) for each input.

        Args:
            interpolate_mode: how the Grad-CAM map is upsampled (see
                ``torch.nn.functional.interpolate``).
            attribute_to_layer_input: compute Grad-CAM on the layer's inputs.
        """
        call = build_call(inputs, target, additional_forward_args, require_float=True)
        cam = self.grad_cam.attribute(
            call.inputs, target, additional_forward_args, attribute_to_layer_input,
            relu_attributions=True,
        )  # fmt: skip
        if isinstance(cam, tuple):
            raise ArgumentError(
                f"GuidedGradCam needs a layer with one output tensor; this one has {len(cam)}"
            )
        guided = self.guided_backprop.attribute(call.inputs, target, additional_forward_args)
        out = []
        for i, (g, x) in enumerate(zip(guided, call.inputs)):
            try:
                out.append(
                    g * LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode)
                )
            except (RuntimeError, ValueError, NotImplementedError):
                warnings.warn(
                    f"GuidedGradCam: cannot upsample the Grad-CAM map of shape "
                    f"{tuple(cam.shape)} to inputs[{i}] of shape {tuple(x.shape)}; returning an "
                    "empty tensor for it",
                    stacklevel=2,
                )
                out.append(torch.empty(0))
        return call.restore(out)
