"""Grad-CAM++, HiResCAM, XGrad-CAM and LayerCAM: closed forms on pooled and flattened linear
heads, slow per-channel reference implementations, callable targets and reshape transforms."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perspicio.attr import (
    LayerCam,
    LayerGradCam,
    LayerGradCamPlusPlus,
    LayerHiResCam,
    LayerXGradCam,
    vit_reshape,
)
from perspicio.testing import ConvNet

ALL = [LayerGradCam, LayerGradCamPlusPlus, LayerHiResCam, LayerXGradCam, LayerCam]


class Head(nn.Module):
    """conv -> ReLU (the CAM layer) -> global average pooling or flatten -> linear."""

    def __init__(self, pool: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = pool
        self.fc = nn.Linear(4 if pool else 4 * 5 * 6, 3)

    def features(self, x: Tensor) -> Tensor:
        return self.relu(self.conv(x))

    def head(self, a: Tensor) -> Tensor:
        return self.fc(a.mean((2, 3)) if self.pool else a.flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


X = torch.randn(3, 2, 5, 6, generator=torch.Generator().manual_seed(0))
TARGET = [0, 2, 1]


def grads_and_values(model: Head, x: Tensor, target: list[int]) -> tuple[Tensor, Tensor]:
    """The target's gradient at the CAM layer, taken by hand on the split model."""
    a = model.features(x).detach().requires_grad_()
    (g,) = torch.autograd.grad(model.head(a)[range(len(x)), target].sum(), a)
    return g, a.detach()


def reference(method: Any, g: Tensor, a: Tensor) -> Tensor:
    """Each paper's map, one example and one channel at a time."""
    out = torch.zeros(a.shape[0], 1, *a.shape[2:])
    for n in range(a.shape[0]):
        for k in range(a.shape[1]):
            gk, ak = g[n, k], a[n, k]
            if method is LayerGradCam:
                w = gk.mean()
            elif method is LayerGradCamPlusPlus:
                den = 2 * gk**2 + ak.sum() * gk**3
                alpha = torch.where(den != 0, gk**2 / torch.where(den != 0, den, 1.0), 0.0)
                w = (alpha * gk.clamp(min=0)).sum()
            elif method is LayerHiResCam:
                w = gk
            elif method is LayerXGradCam:
                w = (gk * ak).sum() / ak.sum() if ak.sum() != 0 else torch.tensor(0.0)
            else:
                w = gk.clamp(min=0)
            out[n, 0] += w * ak
    return out


@pytest.mark.parametrize("pool", [True, False])
@pytest.mark.parametrize("method", ALL)
def test_matches_the_reference_implementation(method: Any, pool: bool) -> None:
    model = Head(pool)
    got = method(model, model.relu).attribute(X, TARGET)
    torch.testing.assert_close(got, reference(method, *grads_and_values(model, X, TARGET)))


@pytest.mark.parametrize("method", [LayerGradCam, LayerHiResCam, LayerXGradCam])
def test_pooled_linear_head_gives_the_original_cam(method: Any) -> None:
    """``y_c = Σ_k W_ck mean(A_k)``: the map is ``Σ_k W_ck A_k / P`` (Zhou et al., 2016)."""
    model = Head(pool=True)
    a, w = model.features(X), model.fc.weight[TARGET]
    expected = (w[:, :, None, None] * a).sum(1, keepdim=True) / 30
    torch.testing.assert_close(method(model, model.relu).attribute(X, TARGET), expected)


def test_pooled_linear_head_closed_forms_of_layer_cam_and_grad_cam_pp() -> None:
    model = Head(pool=True)
    a, w = model.features(X), model.fc.weight[TARGET][:, :, None, None]
    g = w / 30  # the gradient is the same at every position
    torch.testing.assert_close(
        LayerCam(model, model.relu).attribute(X, TARGET), (F.relu(g) * a).sum(1, keepdim=True)
    )
    # alpha = g² / (2g² + S g³) = 1 / (2 + S g), the same at all P = 30 positions
    s = a.sum((2, 3), keepdim=True)
    weight = 30 * F.relu(g) / (2 + s * g)
    torch.testing.assert_close(
        LayerGradCamPlusPlus(model, model.relu).attribute(X, TARGET),
        (weight * a).sum(1, keepdim=True),
    )


def test_hires_cam_sums_to_the_score_without_bias_on_a_flattened_head() -> None:
    model = Head(pool=False)
    cam = LayerHiResCam(model, model.relu).attribute(X, TARGET)
    scores = model(X)[range(3), TARGET] - model.fc.bias[TARGET]
    torch.testing.assert_close(cam.sum((1, 2, 3)), scores)


@pytest.mark.parametrize("method", ALL)
def test_channels_relu_and_2d_layers(method: Any) -> None:
    model = Head(pool=False)
    cam = method(model, model.relu)
    per_channel = cam.attribute(X, 1, attr_dim_summation=False)
    assert per_channel.shape == (3, 4, 5, 6)
    torch.testing.assert_close(per_channel.sum(1, keepdim=True), cam.attribute(X, 1))
    torch.testing.assert_close(
        cam.attribute(X, 1, relu_attributions=True), F.relu(cam.attribute(X, 1))
    )
    assert method(model, model.fc).attribute(X, 1).shape == (3, 1)  # (N, C) values


class Segmenter(nn.Module):
    """A fully convolutional net: per-pixel logits of 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.out = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.relu(self.conv(x)))


@pytest.mark.parametrize("method", [LayerHiResCam, LayerCam, LayerGradCamPlusPlus])
def test_callable_target_for_segmentation(method: Any) -> None:
    """A callable target scores a region; gradient-linear HiResCAM adds up over its pixels."""
    model = Segmenter()
    cam = method(model, model.relu)
    region = cam.attribute(X, lambda out: out[:, 1, 0, 0] + out[:, 1, 2, 3])
    if method is LayerHiResCam:
        torch.testing.assert_close(
            region, cam.attribute(X, (1, 0, 0)) + cam.attribute(X, (1, 2, 3))
        )
    a = model.relu(model.conv(X)).detach().requires_grad_()
    out = model.out(a)
    (g,) = torch.autograd.grad((out[:, 1, 0, 0] + out[:, 1, 2, 3]).sum(), a)
    torch.testing.assert_close(region, reference(method, g, a.detach()))


class Tokens(nn.Module):
    """A class token and 6 patch tokens in, ``(N, 7, 4)`` values at ``block``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.block = nn.Linear(4, 4)
        self.head = nn.Linear(4 * 7, 3)

    def forward(self, t: Tensor) -> Tensor:
        return self.head(torch.tanh(self.block(t)).flatten(1))


@pytest.mark.parametrize("method", ALL)
def test_vit_reshape_equals_reshaping_by_hand(method: Any) -> None:
    model, t = Tokens(), torch.randn(2, 7, 4, generator=torch.Generator().manual_seed(3))
    got = method(model, model.block, reshape_transform=vit_reshape(2, 3)).attribute(t, [0, 2])
    v = model.block(t).detach().requires_grad_()
    (g,) = torch.autograd.grad(model.head(torch.tanh(v).flatten(1))[range(2), [0, 2]].sum(), v)

    def by_hand(z: Tensor) -> Tensor:  # drop the class token, (7, 4) -> (4, 2, 3): row i of
        return torch.stack([z[1 + 3 * i : 4 + 3 * i].T for i in range(2)], 1)  # the image

    g_img = torch.stack([by_hand(g[n]) for n in range(2)])
    a_img = torch.stack([by_hand(v.detach()[n]) for n in range(2)])
    assert got.shape == (2, 1, 2, 3)
    torch.testing.assert_close(got, reference(method, g_img, a_img))


def test_bad_reshape_transforms() -> None:
    model = ConvNet()
    with pytest.raises(TypeError, match="reshape_transform must be a callable"):
        LayerCam(model, model.conv1, reshape_transform=3)  # type: ignore[arg-type]
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"mapped \(2, 8, 8, 8\) to \(8, 8, 8\)"):
        LayerCam(model, model.conv1, reshape_transform=lambda t: t[0]).attribute(x, 1)
    with pytest.raises(TypeError, match="must return a tensor, got list"):
        LayerHiResCam(model, model.conv1, reshape_transform=lambda t: [t]).attribute(x, 1)
    with pytest.raises(ValueError, match=r"needs layer values of shape \(N, 17, C\)"):
        vit_reshape(4, 4)(torch.zeros(2, 10, 3))


@pytest.mark.parametrize("method", ALL)
def test_single_layer_only_and_target_checked_first(method: Any) -> None:
    model = ConvNet()
    with pytest.raises(TypeError, match="takes a single layer"):
        method(model, [model.conv1])
    with pytest.raises(ValueError, match="target gives 2 indices"):
        method(model, model.conv1).attribute(torch.rand(3, 1, 8, 8), [1, 2])
