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
        DemoMethod("Saliency", "gradient", lambda m, x, t: _plain(attr.Saliency(m).attribute(x, target=t))),
        DemoMethod("Input × Gradient", "gradient", lambda m, x, t: _plain(attr.InputXGradient(m).attribute(x, target=t))),
        DemoMethod(
            "Integrated Gradients",
            "path",
            lambda m, x, t: _plain(attr.IntegratedGradients(m).attribute(x, target=t, n_steps=64, return_convergence_delta=True)),
        ),
        DemoMethod(
            "GradientShap",
            "path",
            lambda m, x, t: _plain(
                attr.GradientShap(m).attribute(
                    x, baselines=_background(x), n_samples=32, stdevs=0.05, target=t, return_convergence_delta=True
                )
            ),
        ),
        DemoMethod(
            "SmoothGrad (IG)",
            "path",
            lambda m, x, t: _plain(
                attr.NoiseTunnel(attr.IntegratedGradients(m)).attribute(x, nt_samples=8, stdevs=0.1, target=t, n_steps=16)
            ),
        ),
        DemoMethod(
            "DeepLift",
            "propagation",
            lambda m, x, t: _plain(attr.DeepLift(m).attribute(x, target=t, return_convergence_delta=True)),
        ),
        DemoMethod(
            "DeepLiftShap",
            "propagation",
            lambda m, x, t: _plain(attr.DeepLiftShap(m).attribute(x, baselines=_background(x), target=t, return_convergence_delta=True)),
        ),
        DemoMethod("Guided Backprop", "propagation", lambda m, x, t: _plain(attr.GuidedBackprop(m).attribute(x, target=t))),
        DemoMethod("Deconvolution", "propagation", lambda m, x, t: _plain(attr.Deconvolution(m).attribute(x, target=t))),
    ]


def all_methods() -> list[DemoMethod]:
    """Every method the demo shows, in report order."""
    return gradient_methods()
