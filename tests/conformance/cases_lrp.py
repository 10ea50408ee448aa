"""Conformance cases for LRP and LayerLRP (default rules, composites, canonizers)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from perspicio import attr
from perspicio.lrp import EpsilonGammaBox, EpsilonPlus, MergeBatchNorm, ResNetCanonizer
from perspicio.testing import ConvNet, MultiInputModel, ReLUMLP, ReusedReLUNet, TinyResNet
from tests.conformance.battery import Case


def _build(model_cls: Any, cls: Any, *layers: str, **kw: Any) -> Any:
    def build() -> tuple[nn.Module, Any]:
        model = model_cls()
        if not layers:
            return model, cls(model, **kw)
        picked = [model.get_submodule(n) for n in layers]
        return model, cls(model, picked if len(picked) > 1 else picked[0], **kw)

    return build


def x_mlp() -> torch.Tensor:
    return torch.randn(4, 6, generator=torch.Generator().manual_seed(0))


def x_small() -> torch.Tensor:
    return torch.randn(3, 5, generator=torch.Generator().manual_seed(4))


def x_multi() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 4, generator=g), torch.randn(3, 3, generator=g)


def x_img() -> torch.Tensor:
    return torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))


def x_digits() -> torch.Tensor:
    return torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(5))


def shapes(*dims: tuple[int, ...]) -> Any:
    return lambda model, inputs: tuple(torch.Size(d) for d in dims)


SCALE = torch.tensor([0.5, 1.0, 2.0])
CANON = [MergeBatchNorm(), ResNetCanonizer()]

CASES = [
    Case("lrp-mlp", _build(ReLUMLP, attr.LRP), x_mlp, {"target": [0, 1, 2, 0]}),
    Case("lrp-convnet", _build(ConvNet, attr.LRP), x_digits, {"target": 7}),
    Case(
        "lrp-multi",
        _build(MultiInputModel, attr.LRP),
        x_multi,
        {"target": 1, "additional_forward_args": (SCALE,), "return_convergence_delta": True},
        output=shapes((3, 4), (3, 3), (3,)),
    ),
    Case("lrp-resnet", _build(TinyResNet, attr.LRP), x_img, {"target": 4}),
    Case(
        "lrp-resnet-gammabox",
        _build(TinyResNet, attr.LRP, composite=EpsilonGammaBox(0.0, 1.0), canonizers=CANON),
        x_img,
        {"target": [1, 3]},
    ),
    Case(
        "lrp-convnet-plus",
        _build(ConvNet, attr.LRP, composite=EpsilonPlus()),
        x_digits,
        {"target": 2},
    ),
    Case("lrp-reused-relu", _build(ReusedReLUNet, attr.LRP), x_small, {"target": 1}),
    Case(
        "layerlrp-mlp",
        _build(ReLUMLP, attr.LayerLRP, "fc2"),
        x_mlp,
        {"target": 2, "return_convergence_delta": True},
        output=shapes((4, 8), (4,)),
    ),
    Case(
        "layerlrp-convnet-input",
        _build(ConvNet, attr.LayerLRP, "conv2"),
        x_digits,
        {"target": 0, "attribute_to_layer_input": True},
        output=shapes((3, 8, 8, 8)),
    ),
    Case(
        "layerlrp-resnet-list",
        _build(TinyResNet, attr.LayerLRP, "layer1", "avgpool", canonizers=CANON),
        x_img,
        {"target": 0, "return_convergence_delta": True},
        output=shapes((2, 8, 8, 8), (2, 8, 1, 1), (2,), (2,)),
    ),
]
