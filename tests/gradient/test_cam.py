from __future__ import annotations

import doctest
import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from perspicio.attr import GuidedBackprop, GuidedGradCam, LayerAttribution, LayerGradCam
from perspicio.testing import ConvNet, MultiInputModel, TinyResNet


def test_doctests() -> None:
    assert doctest.testmod(importlib.import_module("perspicio.gradient.cam")).failed == 0


class GapNet(nn.Module):
    """conv -> ReLU -> global average pooling -> linear: Grad-CAM has a closed form."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


@pytest.mark.parametrize("relu", [False, True])
def test_grad_cam_closed_form_on_a_pooled_linear_head(relu: bool) -> None:
    model, x = GapNet(), torch.randn(3, 2, 5, 6)
    target = [0, 2, 1]
    cam = LayerGradCam(model, model.relu).attribute(x, target, relu_attributions=relu)
    act = model.relu(model.conv(x))  # (N, C, H, W); dy/dA_k = w_k / (H W) everywhere
    w = model.fc.weight[target]  # (N, C)
    expected = (w[:, :, None, None] * act).sum(1, keepdim=True) / (5 * 6)
    torch.testing.assert_close(cam, F.relu(expected) if relu else expected)


def test_grad_cam_per_channel_and_2d_layers() -> None:
    model, x = GapNet(), torch.randn(2, 2, 5, 6)
    per_channel = LayerGradCam(model, model.relu).attribute(x, 1, attr_dim_summation=False)
    assert per_channel.shape == (2, 4, 5, 6)
    summed = LayerGradCam(model, model.relu).attribute(x, 1)
    torch.testing.assert_close(per_channel.sum(1, keepdim=True), summed)
    flat = LayerGradCam(model, model.fc).attribute(x, 1)  # (N, C): gradient × activation summed
    torch.testing.assert_close(flat, model(x)[:, 1:2])


def test_grad_cam_upsampled_to_the_input() -> None:
    model, x = ConvNet(), torch.rand(2, 1, 8, 8)
    cam = LayerGradCam(model, model.pool).attribute(x, 3)
    assert cam.shape == (2, 1, 4, 4)
    up = LayerAttribution.interpolate(cam, (8, 8))
    torch.testing.assert_close(up[:, :, ::2, ::2], cam)
    assert LayerAttribution.interpolate(cam, (8, 8), "bilinear").shape == (2, 1, 8, 8)


def test_guided_grad_cam_is_guided_backprop_times_upsampled_cam() -> None:
    model, x = TinyResNet(), torch.rand(2, 3, 8, 8)
    got = GuidedGradCam(model, model.layer1).attribute(x, 4, interpolate_mode="bilinear")
    cam = LayerGradCam(model, model.layer1).attribute(x, 4, relu_attributions=True)
    guided = GuidedBackprop(model).attribute(x, 4)
    expected = guided * LayerAttribution.interpolate(cam, (8, 8), "bilinear")
    torch.testing.assert_close(got, expected)


def test_guided_grad_cam_warns_for_inputs_without_spatial_dims() -> None:
    model = MultiInputModel()
    x = (torch.randn(3, 4), torch.randn(3, 3))
    with pytest.warns(UserWarning, match="cannot upsample"):
        out = GuidedGradCam(model, model.fa).attribute(x, 1)
    assert isinstance(out, tuple) and all(t.numel() == 0 for t in out)


def test_single_layer_only() -> None:
    model = ConvNet()
    with pytest.raises(TypeError, match="takes a single layer"):
        LayerGradCam(model, [model.conv1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a single layer"):
        GuidedGradCam(model, [model.conv1])  # type: ignore[arg-type]


def test_target_is_validated_before_any_model_call() -> None:
    model = ConvNet()
    with pytest.raises(ValueError, match="target gives 2 indices"):
        LayerGradCam(model, model.conv1).attribute(torch.rand(3, 1, 8, 8), [1, 2])
