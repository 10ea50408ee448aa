"""Conformance cases for the gradient, path and DeepLift families (inputs site)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from perspicio import attr
from perspicio.testing import ConvNet, MultiInputModel, ReLUMLP, ReusedReLUNet, TinyResNet
from tests.conformance.battery import Case


def _mlp(cls: Any, **kw: Any) -> Any:
    def build() -> tuple[nn.Module, Any]:
        model = ReLUMLP()
        return model, cls(model, **kw)

    return build


def _multi(cls: Any) -> Any:
    def build() -> tuple[nn.Module, Any]:
        model = MultiInputModel()
        return model, cls(model)

    return build


def _resnet(cls: Any) -> Any:
    def build() -> tuple[nn.Module, Any]:
        model = TinyResNet()
        return model, cls(model)

    return build


def x_mlp() -> torch.Tensor:
    return torch.randn(4, 6, generator=torch.Generator().manual_seed(0))


def x_multi() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 4, generator=g), torch.randn(3, 3, generator=g)


def x_img() -> torch.Tensor:
    return torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))


SCALE = torch.tensor([0.5, 1.0, 2.0])
DIST = torch.randn(5, 6, generator=torch.Generator().manual_seed(3))
MULTI_DIST = (torch.zeros(2, 4), torch.ones(2, 3) * 0.1)

CASES = [
    Case("saliency-mlp", _mlp(attr.Saliency), x_mlp, {"target": [0, 1, 2, 0]}),
    Case(
        "saliency-multi",
        _multi(attr.Saliency),
        x_multi,
        {"target": 1, "additional_forward_args": (SCALE,)},
    ),
    Case("ixg-mlp", _mlp(attr.InputXGradient), x_mlp, {"target": 2}),
    Case("ixg-resnet", _resnet(attr.InputXGradient), x_img, {"target": 3}),
    Case(
        "ig-mlp",
        _mlp(attr.IntegratedGradients),
        x_mlp,
        {"target": [0, 1, 2, 0], "n_steps": 7},
        chunk_arg="internal_batch_size",
        chunk_values=(None, 4, 12),
    ),
    Case(
        "ig-multi",
        _multi(attr.IntegratedGradients),
        x_multi,
        {
            "target": 0,
            "baselines": (0.1, torch.zeros(1, 3)),
            "additional_forward_args": (SCALE,),
            "n_steps": 5,
            "method": "riemann_trapezoid",
        },
        chunk_arg="internal_batch_size",
        chunk_values=(None, 3, 9),
    ),
    Case(
        "ig-resnet",
        _resnet(attr.IntegratedGradients),
        x_img,
        {"target": 1, "n_steps": 6},
        chunk_arg="internal_batch_size",
        chunk_values=(None, 2, 6),
    ),
    Case(
        "gradshap-mlp",
        _mlp(attr.GradientShap),
        x_mlp,
        {"baselines": DIST, "target": 1, "n_samples": 6, "stdevs": 0.1},
        chunk_arg="internal_batch_size",
        chunk_values=(None, 1, 5),
        batch_invariant=False,
        random=True,
    ),
    Case(
        "gradshap-multi",
        _multi(attr.GradientShap),
        x_multi,
        {"baselines": MULTI_DIST, "target": 2, "additional_forward_args": (SCALE,)},
        chunk_arg="internal_batch_size",
        batch_invariant=False,
        random=True,
    ),
    Case("deeplift-mlp", _mlp(attr.DeepLift), x_mlp, {"target": [0, 1, 2, 0], "baselines": 0.1}),
    Case(
        "deeplift-multi",
        _multi(attr.DeepLift),
        x_multi,
        {"target": 0, "additional_forward_args": (SCALE,)},
    ),
    Case("deeplift-resnet", _resnet(attr.DeepLift), x_img, {"target": 4}),
    Case(
        "deeplift-reused-relu",
        lambda: (lambda m: (m, attr.DeepLift(m)))(ReusedReLUNet()),
        lambda: torch.randn(3, 5, generator=torch.Generator().manual_seed(4)),
        {"target": 1},
    ),
    Case("deepliftshap-mlp", _mlp(attr.DeepLiftShap), x_mlp, {"baselines": DIST, "target": 0}),
    Case(
        "guided-convnet",
        lambda: (lambda m: (m, attr.GuidedBackprop(m)))(ConvNet()),
        lambda: torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(5)),
        {"target": 7},
    ),
    Case("deconv-resnet", _resnet(attr.Deconvolution), x_img, {"target": 0}),
    Case(
        "nt-saliency",
        lambda: (lambda m: (m, attr.NoiseTunnel(attr.Saliency(m))))(ReLUMLP()),
        x_mlp,
        {"target": [0, 1, 2, 0], "nt_samples": 5, "stdevs": 0.2},
        chunk_arg="nt_samples_batch_size",
        batch_invariant=False,
        random=True,
    ),
    Case(
        "nt-ig-vargrad",
        lambda: (lambda m: (m, attr.NoiseTunnel(attr.IntegratedGradients(m))))(MultiInputModel()),
        x_multi,
        {
            "nt_type": "vargrad",
            "target": 1,
            "nt_samples": 4,
            "stdevs": (0.1, 0.2),
            "n_steps": 4,
            "additional_forward_args": (SCALE,),
        },
        chunk_arg="nt_samples_batch_size",
        batch_invariant=False,
        random=True,
    ),
    Case(
        "nt-gradshap-sq",
        lambda: (lambda m: (m, attr.NoiseTunnel(attr.IntegratedGradients(m))))(ReLUMLP()),
        x_mlp,
        {"nt_type": "smoothgrad_sq", "target": 0, "nt_samples": 3, "stdevs": 0.1, "n_steps": 4},
        chunk_arg="nt_samples_batch_size",
        batch_invariant=False,
        random=True,
    ),
]
