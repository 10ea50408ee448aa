"""Grad-CAM and Guided Grad-CAM."""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perspicio._core.attribution import (
    GradientAttribution,
    LayerAttribution,
    check_single_layer,
)
from perspicio._core.call import TensorOrTensors, build_call
from perspicio._core.sites import target_objective
from perspicio._core.validate import ArgumentError


def grad_cam(grads: Tensor, values: Tensor, sum_channels: bool, relu: bool) -> Tensor:
    """Channel weights (gradients averaged over the dims after the channel dim) × values."""
    weights = (
        grads.mean(dim=tuple(range(2, grads.dim())), keepdim=True) if grads.dim() > 2 else grads
    )
    cam = weights * values
    if sum_channels:
        cam = cam.sum(dim=1, keepdim=True)
    return F.relu(cam) if relu else cam


class LayerGradCam(LayerAttribution, GradientAttribution):
    """Grad-CAM (Selvaraju et al., 2017, https://arxiv.org/abs/1610.02391).

    Each channel of the layer's output is weighted by the mean of the target's gradient over
    that channel's spatial positions; the weighted channels are summed (with
    ``attr_dim_summation``, the default) into one map per example, of the layer's spatial
    size. Upsample it to the input's size with :meth:`LayerAttribution.interpolate`.

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

    def __init__(
        self, forward_func: Any, layer: nn.Module, device_ids: list[int] | None = None
    ) -> None:
        check_single_layer(layer, "LayerGradCam")
        LayerAttribution.__init__(self, forward_func, layer, device_ids)

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
        """The Grad-CAM map of the target output at the layer.

        Args:
            attribute_to_layer_input: use the layer's inputs instead of its output.
            relu_attributions: keep only the positive part of the map (as in the paper).
            attr_dim_summation: sum over the channel dimension (otherwise one weighted map
                per channel).
            grad_kwargs: passed to ``torch.autograd.grad``.
        """
        call = build_call(inputs, target, additional_forward_args)
        site = self._site(attribute_to_layer_input)
        grads, values, _ = site.grads_and_values(
            target_objective(self.forward_func), call, grad_kwargs
        )
        maps = [
            grad_cam(g, v, attr_dim_summation, relu_attributions) for g, v in zip(grads, values)
        ]
        return self._restore([tuple(maps)])


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
