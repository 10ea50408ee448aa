"""The methods shown in the demo report, one entry each.

Every entry takes the model, a batch of images ``(N, 1, 8, 8)`` and per-example targets and
returns an attribution of the images' shape (and a convergence delta where the method has
one). Families add their methods here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from perspicio import attr

Result = tuple[Tensor, Tensor | None]


@dataclass(frozen=True)
class DemoMethod:
    name: str
    family: str
    run: Callable[[nn.Module, Tensor, list[int]], Result]


def _plain(result: object) -> Result:
    if isinstance(result, tuple):
        return result[0], result[1]
    assert isinstance(result, Tensor)
    return result, None


def _background(x: Tensor) -> Tensor:
    return torch.zeros(8, *x.shape[1:])


def gradient_methods() -> list[DemoMethod]:
    return [
        DemoMethod(
            "Saliency", "gradient", lambda m, x, t: _plain(attr.Saliency(m).attribute(x, target=t))
        ),
        DemoMethod(
            "Input × Gradient",
            "gradient",
            lambda m, x, t: _plain(attr.InputXGradient(m).attribute(x, target=t)),
        ),
        DemoMethod(
            "Integrated Gradients",
            "path",
            lambda m, x, t: _plain(
                attr.IntegratedGradients(m).attribute(
                    x, target=t, n_steps=64, return_convergence_delta=True
                )
            ),
        ),
        DemoMethod(
            "GradientShap",
            "path",
            lambda m, x, t: _plain(
                attr.GradientShap(m).attribute(
                    x,
                    baselines=_background(x),
                    n_samples=32,
                    stdevs=0.05,
                    target=t,
                    return_convergence_delta=True,
                )
            ),
        ),
        DemoMethod(
            "SmoothGrad (IG)",
            "path",
            lambda m, x, t: _plain(
                attr.NoiseTunnel(attr.IntegratedGradients(m)).attribute(
                    x, nt_samples=8, stdevs=0.1, target=t, n_steps=16
                )
            ),
        ),
        DemoMethod(
            "DeepLift",
            "propagation",
            lambda m, x, t: _plain(
                attr.DeepLift(m).attribute(x, target=t, return_convergence_delta=True)
            ),
        ),
        DemoMethod(
            "DeepLiftShap",
            "propagation",
            lambda m, x, t: _plain(
                attr.DeepLiftShap(m).attribute(
                    x, baselines=_background(x), target=t, return_convergence_delta=True
                )
            ),
        ),
        DemoMethod(
            "Guided Backprop",
            "propagation",
            lambda m, x, t: _plain(attr.GuidedBackprop(m).attribute(x, target=t)),
        ),
        DemoMethod(
            "Deconvolution",
            "propagation",
            lambda m, x, t: _plain(attr.Deconvolution(m).attribute(x, target=t)),
        ),
    ]


def _groups(height: int, width: int) -> Tensor:
    """Feature groups of ``height × width`` pixels on the 8×8 grid, shape ``(1, 1, 8, 8)``."""
    rows, cols = torch.arange(8).reshape(8, 1), torch.arange(8).reshape(1, 8)
    return ((rows // height) * (8 // width) + cols // width).reshape(1, 1, 8, 8)


def perturbation_methods() -> list[DemoMethod]:
    blocks, strips = _groups(2, 2), _groups(2, 4)  # 16 and 8 groups
    return [
        DemoMethod(
            "Feature Ablation",
            "perturbation",
            lambda m, x, t: _plain(attr.FeatureAblation(m).attribute(x, target=t)),
        ),
        DemoMethod(
            "Occlusion",
            "perturbation",
            lambda m, x, t: _plain(
                attr.Occlusion(m).attribute(x, sliding_window_shapes=(1, 3, 3), target=t)
            ),
        ),
        DemoMethod(
            "Feature Permutation",
            "perturbation",
            lambda m, x, t: _plain(
                attr.FeaturePermutation(m).attribute(x, target=t, feature_mask=blocks)
            ),
        ),
        DemoMethod(
            "Shapley Value Sampling",
            "perturbation",
            lambda m, x, t: _plain(
                attr.ShapleyValueSampling(m).attribute(
                    x, target=t, feature_mask=blocks, n_samples=25
                )
            ),
        ),
        DemoMethod(
            "Shapley Values (exact)",
            "perturbation",
            lambda m, x, t: _plain(
                attr.ShapleyValues(m).attribute(x, target=t, feature_mask=strips)
            ),
        ),
        DemoMethod(
            "Lime",
            "surrogate",
            lambda m, x, t: _plain(
                attr.Lime(m).attribute(x, target=t, feature_mask=blocks, n_samples=200)
            ),
        ),
        DemoMethod(
            "Kernel SHAP",
            "surrogate",
            lambda m, x, t: _plain(
                attr.KernelShap(m).attribute(x, target=t, feature_mask=blocks, n_samples=200)
            ),
        ),
    ]


def _grad_cam(m: nn.Module, x: Tensor, t: list[int]) -> Result:
    cam = attr.LayerGradCam(m, m.get_submodule("conv2")).attribute(
        x, target=t, relu_attributions=True
    )
    return attr.LayerAttribution.interpolate(cam, (8, 8), "bilinear"), None


def _conductance(m: nn.Module, x: Tensor, t: list[int]) -> Result:
    cond, delta = attr.LayerConductance(m, m.get_submodule("conv1")).attribute(
        x, target=t, n_steps=32, return_convergence_delta=True
    )
    return cond.sum(1, keepdim=True), delta  # (N, 8, 8, 8) channels summed per pixel


def layer_methods() -> list[DemoMethod]:
    return [
        DemoMethod("Grad-CAM (conv2, upsampled)", "layer", _grad_cam),
        DemoMethod(
            "Guided Grad-CAM",
            "layer",
            lambda m, x, t: _plain(
                attr.GuidedGradCam(m, m.get_submodule("conv2")).attribute(x, target=t)
            ),
        ),
        DemoMethod("Layer Conductance (conv1)", "layer", _conductance),
        DemoMethod(
            "Neuron IG (fc1 unit 0)",
            "neuron",
            lambda m, x, t: _plain(
                attr.NeuronIntegratedGradients(m, m.get_submodule("fc1")).attribute(
                    x, 0, n_steps=32
                )
            ),
        ),
        DemoMethod(
            "LRP (epsilon)",
            "propagation",
            lambda m, x, t: _plain(
                attr.LRP(m).attribute(x, target=t, return_convergence_delta=True)
            ),
        ),
    ]


def all_methods() -> list[DemoMethod]:
    """Every method the demo shows, in report order."""
    return gradient_methods() + perturbation_methods() + layer_methods()
