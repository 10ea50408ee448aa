"""Conformance cases for the CAM family (Grad-CAM++, HiResCAM, XGrad-CAM, LayerCAM, Score-CAM,
Ablation-CAM, Eigen-CAM), on CNNs, a residual network with a reused in-place ReLU and a tiny
vision transformer read through ``vit_reshape``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from perspicio import attr
from perspicio.testing import ConvNet, ReLUMLP, TinyResNet
from tests.conformance.battery import Case
from tests.conformance.cases_layer import on, shapes, x_digit, x_img, x_mlp


class PatchViT(nn.Module):
    """Patches of a ``(N, 3, 8, 8)`` image as 16 tokens plus a class token, one token-mixing
    layer, a per-token block and a class-token head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patch = nn.Conv2d(3, 6, 2, stride=2)
        self.cls = nn.Parameter(torch.randn(1, 1, 6))
        self.mix = nn.Linear(17, 17)
        self.block = nn.Sequential(nn.Linear(6, 6), nn.ReLU())
        self.head = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1)
        tokens = self.block(self.mix(tokens.transpose(1, 2)).transpose(1, 2))
        return self.head(tokens[:, 0])


def on_path(model_cls: Any, cls: Any, path: str) -> Callable[[], tuple[nn.Module, Any]]:
    """Like ``on`` for a nested layer (``"layer1.relu"``: one in-place ReLU called twice)."""

    def build() -> tuple[nn.Module, Any]:
        model = model_cls()
        return model, cls(model, model.get_submodule(path))

    return build


VIT = {"reshape_transform": attr.vit_reshape(4, 4)}
PPE = "perturbations_per_eval"
GRADIENT_CAMS = [
    ("gradcampp", attr.LayerGradCamPlusPlus),
    ("hirescam", attr.LayerHiResCam),
    ("xgradcam", attr.LayerXGradCam),
    ("layercam", attr.LayerCam),
]

CASES = [
    *[
        case
        for name, cls in GRADIENT_CAMS
        for case in (
            Case(f"{name}-convnet", on(ConvNet, cls, "relu2"), x_digit,
                 {"target": [1, 2, 3], "relu_attributions": True}, output=shapes((3, 1, 8, 8))),
            Case(f"{name}-resnet-reused-channels", on_path(TinyResNet, cls, "layer1.relu"), x_img,
                 {"target": 2, "attr_dim_summation": False}, output=shapes((2, 8, 8, 8))),
            Case(f"{name}-mlp-last", on(ReLUMLP, cls, "fc3"), x_mlp, {"target": [0, 1, 2, 0]},
                 output=shapes((4, 1))),
            Case(f"{name}-vit", on(PatchViT, cls, "block", **VIT), x_img, {"target": 1},
                 output=shapes((2, 1, 4, 4))),
        )
    ],
    Case("scorecam-convnet-upsampled", on(ConvNet, attr.LayerScoreCam, "pool"), x_digit,
         {"target": [0, 4, 9]}, chunk_arg=PPE, output=shapes((3, 1, 4, 4))),
    Case("scorecam-resnet-input", on(TinyResNet, attr.LayerScoreCam, "layer2"), x_img,
         {"target": 3, "attribute_to_layer_input": True, "attr_dim_summation": False},
         chunk_arg=PPE, output=shapes((2, 8, 8, 8))),
    Case("scorecam-vit-callable", on(PatchViT, attr.LayerScoreCam, "block", **VIT), x_img,
         {"target": lambda out: out[:, 1] - out[:, 2]}, chunk_arg=PPE,
         output=shapes((2, 1, 4, 4))),
    Case("ablationcam-convnet", on(ConvNet, attr.LayerAblationCam, "conv2"), x_digit,
         {"target": [5, 6, 7], "relu_attributions": True}, chunk_arg=PPE,
         output=shapes((3, 1, 8, 8))),
    Case("ablationcam-resnet-reused", on_path(TinyResNet, attr.LayerAblationCam, "layer1.relu"),
         x_img,
         {"target": 1}, chunk_arg=PPE, output=shapes((2, 1, 8, 8))),
    Case("ablationcam-resnet-before-skip",
         on_path(TinyResNet, attr.LayerAblationCam, "layer1.conv1"), x_img,
         {"target": [0, 4]}, chunk_arg=PPE, output=shapes((2, 1, 8, 8))),
    Case("ablationcam-convnet-input", on(ConvNet, attr.LayerAblationCam, "conv2"), x_digit,
         {"target": 2, "attribute_to_layer_input": True, "attr_dim_summation": False},
         chunk_arg=PPE, output=shapes((3, 8, 8, 8))),
    Case("ablationcam-mlp-last", on(ReLUMLP, attr.LayerAblationCam, "fc3"), x_mlp,
         {"target": 2}, chunk_arg=PPE, output=shapes((4, 1))),
    Case("ablationcam-vit", on(PatchViT, attr.LayerAblationCam, "block", **VIT), x_img,
         {"target": 0}, chunk_arg=PPE, output=shapes((2, 1, 4, 4))),
    Case("eigencam-convnet", on(ConvNet, attr.LayerEigenCam, "conv2"), x_digit, {},
         output=shapes((3, 1, 8, 8))),
    Case("eigencam-resnet-uncentred", on(TinyResNet, attr.LayerEigenCam, "layer2"), x_img,
         {"center": False, "relu_attributions": True}, output=shapes((2, 1, 8, 8))),
    Case("eigencam-vit", on(PatchViT, attr.LayerEigenCam, "block", **VIT), x_img, {},
         output=shapes((2, 1, 4, 4))),
]  # fmt: skip
