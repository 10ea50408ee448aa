"""The methods shown in the demo report, one entry each.

Every entry takes the model, a batch of images ``(N, 1, S, S)`` and per-example targets and
returns an attribution of the images' shape (and a convergence delta where the method has
one). A :class:`Spec` says which layers of the model the Layer and Neuron methods use and how
coarse the feature groups are: :data:`DIGITS` for the 8×8 digits CNN, :data:`SHAPES` for the
32×32 shapes CNN. Families add their methods here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from perspicio import attr

Result = tuple[Tensor, Tensor | None]


@dataclass(frozen=True)
class Spec:
    """What the method entries need to know about a demo model and its images."""

    size: int = 8  # images are (N, 1, size, size)
    cam_layer: str = "relu2"  # the last convolutional block, for the CAM family
    conductance_layer: str = "conv1"
    neuron_layer: str = "fc1"
    neuron: int | tuple[int, ...] = 0
    occlusion: tuple[int, int] = (3, 1)  # window side and stride


DIGITS = Spec()
SHAPES = Spec(
    size=32, cam_layer="relu3", conductance_layer="conv2", neuron_layer="conv3",
    neuron=(0, 4, 4), occlusion=(6, 2),
)  # fmt: skip


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


def gradient_methods(spec: Spec = DIGITS) -> list[DemoMethod]:
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


def _grid(size: int, rows: int, cols: int) -> Tensor:
    """``rows × cols`` feature groups of equal blocks on the image, shape ``(1, 1, size, size)``."""
    r, c = torch.arange(size).reshape(size, 1), torch.arange(size).reshape(1, size)
    return ((r // (size // rows)) * cols + c // (size // cols)).reshape(1, 1, size, size)


def perturbation_methods(spec: Spec = DIGITS) -> list[DemoMethod]:
    blocks, strips = _grid(spec.size, 4, 4), _grid(spec.size, 4, 2)  # 16 and 8 groups
    window, stride = spec.occlusion
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
                attr.Occlusion(m).attribute(
                    x, sliding_window_shapes=(1, window, window), strides=stride, target=t
                )
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


CAMS = [
    ("Grad-CAM", attr.LayerGradCam),
    ("Grad-CAM++", attr.LayerGradCamPlusPlus),
    ("HiResCAM", attr.LayerHiResCam),
    ("XGrad-CAM", attr.LayerXGradCam),
    ("LayerCAM", attr.LayerCam),
    ("Score-CAM", attr.LayerScoreCam),
    ("Ablation-CAM", attr.LayerAblationCam),
    ("Eigen-CAM", attr.LayerEigenCam),
]


def _cam(cls: type, layer: str) -> Callable[[nn.Module, Tensor, list[int]], Result]:
    def run(m: nn.Module, x: Tensor, t: list[int]) -> Result:
        method = cls(m, m.get_submodule(layer))
        if cls is attr.LayerEigenCam:  # class agnostic
            cam = method.attribute(x, relu_attributions=True)
        else:
            cam = method.attribute(x, target=t, relu_attributions=True)
        return attr.LayerAttribution.interpolate(cam, tuple(x.shape[2:]), "bilinear"), None

    return run


def cam_methods(spec: Spec = DIGITS) -> list[DemoMethod]:
    """The CAM family on the last convolutional block, upsampled to the image."""
    return [
        DemoMethod(f"{name} ({spec.cam_layer}, upsampled)", "cam", _cam(cls, spec.cam_layer))
        for name, cls in CAMS
    ]


def _conductance(layer: str) -> Callable[[nn.Module, Tensor, list[int]], Result]:
    def run(m: nn.Module, x: Tensor, t: list[int]) -> Result:
        cond, delta = attr.LayerConductance(m, m.get_submodule(layer)).attribute(
            x, target=t, n_steps=32, return_convergence_delta=True
        )
        if cond.shape[2:] != x.shape[2:]:  # a pooled layer: back to the image's size
            cond = attr.LayerAttribution.interpolate(cond, tuple(x.shape[2:]), "bilinear")
        return cond.sum(1, keepdim=True), delta  # channels summed per pixel

    return run


def layer_methods(spec: Spec = DIGITS) -> list[DemoMethod]:
    return [
        *cam_methods(spec),
        DemoMethod(
            "Guided Grad-CAM",
            "layer",
            lambda m, x, t: _plain(
                attr.GuidedGradCam(m, m.get_submodule(spec.cam_layer)).attribute(x, target=t)
            ),
        ),
        DemoMethod(
            f"Layer Conductance ({spec.conductance_layer})",
            "layer",
            _conductance(spec.conductance_layer),
        ),
        DemoMethod(
            f"Neuron IG ({spec.neuron_layer} unit {spec.neuron})",
            "neuron",
            lambda m, x, t: _plain(
                attr.NeuronIntegratedGradients(m, m.get_submodule(spec.neuron_layer)).attribute(
                    x, spec.neuron, n_steps=32
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


def all_methods(spec: Spec = DIGITS) -> list[DemoMethod]:
    """Every method the demo shows, in report order."""
    return gradient_methods(spec) + perturbation_methods(spec) + layer_methods(spec)
