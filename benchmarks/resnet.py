"""ResNet-18 workloads at 1x3x224x224 (the expensive-model end of the table).

Captum gets the same arguments as perspicio, its defaults included (``perturbations_per_eval``
is 1 there). Captum's DeepLift cannot run on the torchvision-style model (it rejects a ReLU
module used twice in one forward pass), so Captum's DeepLift runs on the separate-ReLU twin:
the same weights and the same function.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from benchmarks.models import ResNet18, resnet18_pair
from benchmarks.workload import (
    Bench,
    Config,
    Workload,
    attribute,
    both,
    cached,
    explainer,
    grad_floor,
    identity,
    instance,
    perturbation_floor,
    rows_of,
)

TARGET = 7
# pass sizes the perturbation floors try, each over about 32 images
CHUNKS, CALIBRATION_ROWS = (1, 2, 4, 8, 16, 32, 64), 32


def _models(cfg: Config) -> tuple[ResNet18, ResNet18]:
    return cached("resnet18", cfg, resnet18_pair)


def _image(cfg: Config, n: int = 1, seed: int = 0) -> Tensor:
    side = cfg.pick(224, 32)
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, side, side, generator=g).to(cfg.device)


def segments(cfg: Config, grid: int = 8) -> Tensor:
    """A ``grid x grid`` patch mask (64 segments), shared by the colour channels: (1, 1, H, W)."""
    side = cfg.pick(224, 32)
    idx = torch.arange(side) * grid // side
    return (idx[:, None] * grid + idx[None, :]).reshape(1, 1, side, side).to(cfg.device)


def _floor(model: ResNet18, x: Tensor, rows: int) -> tuple[Any, str]:
    return perturbation_floor(model, x, rows, CHUNKS, CALIBRATION_ROWS)


def _input_grad(model: ResNet18, batch: Tensor) -> Any:
    return grad_floor(identity, model, batch, TARGET)


def saliency(cfg: Config) -> Bench:
    model, _ = _models(cfg)
    x = _image(cfg, 8)
    p, c = both("Saliency", (model,), x, target=TARGET)
    return Bench(p, c, _input_grad(model, x), "fwd+bwd 8 rows")


def integrated_gradients(cfg: Config) -> Bench:
    model, _ = _models(cfg)
    x, steps = _image(cfg), cfg.pick(50, 4)
    p, c = both("IntegratedGradients", (model,), x, target=TARGET, n_steps=steps)
    return Bench(p, c, _input_grad(model, rows_of(x, steps)), f"fwd+bwd {steps} rows")


def gradient_shap(cfg: Config) -> Bench:
    model, _ = _models(cfg)
    x, dist, n = _image(cfg), _image(cfg, 4, seed=1), cfg.pick(20, 3)
    kw: dict[str, Any] = {"target": TARGET, "n_samples": n, "stdevs": 0.1}
    p, c = both("GradientShap", (model,), x, baselines=dist, **kw)
    return Bench(p, c, _input_grad(model, rows_of(x, n)), f"fwd+bwd {n} rows")


def noise_tunnel(cfg: Config) -> Bench:
    model, _ = _models(cfg)
    x, samples, steps = _image(cfg), cfg.pick(5, 2), cfg.pick(10, 2)
    entries = []
    for library in ("perspicio", "captum"):
        ig = instance(library, "IntegratedGradients", model)
        nt = ig if isinstance(ig, str) else instance(library, "NoiseTunnel", ig)
        entries.append(
            attribute(
                nt, x, nt_type="smoothgrad", nt_samples=samples, stdevs=0.1,
                target=TARGET, n_steps=steps,
            )
        )  # fmt: skip
    rows = samples * steps
    floor = _input_grad(model, rows_of(x, rows))
    return Bench(entries[0], entries[1], floor, f"fwd+bwd {rows} rows")


def deep_lift(cfg: Config) -> Bench:
    reused, separate = _models(cfg)
    x = _image(cfg)
    base = torch.zeros_like(x)
    p = explainer("perspicio", "DeepLift", (reused,), x, baselines=base, target=TARGET)
    c = explainer("captum", "DeepLift", (separate,), x, baselines=base, target=TARGET)
    return Bench(p, c, _input_grad(reused, rows_of(x, 2)), "fwd+bwd 2 rows")


def occlusion(cfg: Config) -> Bench:
    model, _ = _models(cfg)
    x = _image(cfg)
    side = x.shape[-1]
    per_dim = (side - 15) // 8 + 1
    p, c = both(
        "Occlusion", (model,), x, sliding_window_shapes=(3, 15, 15), strides=(3, 8, 8),
        baselines=0.0, target=TARGET,
    )  # fmt: skip
    floor, rows_doc = _floor(model, x, per_dim * per_dim + 1)
    return Bench(p, c, floor, rows_doc)


def _masked(cfg: Config, name: str, rows: int, **kwargs: Any) -> Bench:
    model, _ = _models(cfg)
    x = _image(cfg)
    p, c = both(name, (model,), x, feature_mask=segments(cfg), target=TARGET, **kwargs)
    return Bench(p, c, *_floor(model, x, rows))


def feature_ablation(cfg: Config) -> Bench:
    return _masked(cfg, "FeatureAblation", 64 + 1, baselines=0.0)


def shapley_value_sampling(cfg: Config) -> Bench:
    n = cfg.pick(4, 2)
    return _masked(cfg, "ShapleyValueSampling", n * 64 + 1, baselines=0.0, n_samples=n)


def lime(cfg: Config) -> Bench:
    n = cfg.pick(200, 20)
    return _masked(cfg, "Lime", n, baselines=0.0, n_samples=n)


def kernel_shap(cfg: Config) -> Bench:
    n = cfg.pick(200, 20)
    return _masked(cfg, "KernelShap", n, baselines=0.0, n_samples=n)


def _layer_floor(model: ResNet18, stage: int, batch: Tensor) -> Any:
    return grad_floor(
        lambda x: model.run(x, 0, stage + 1), lambda a: model.run(a, stage + 1), batch, TARGET
    )


def layer_grad_cam(cfg: Config) -> Bench:
    model, _ = _models(cfg)
    x = _image(cfg)
    p, c = both("LayerGradCam", (model, model.layer4), x, target=TARGET)
    return Bench(p, c, _layer_floor(model, 4, x), "fwd + bwd to layer4, 1 row")


def layer_conductance(cfg: Config) -> Bench:
    model, _ = _models(cfg)
    x, steps = _image(cfg), cfg.pick(50, 4)
    p, c = both("LayerConductance", (model, model.layer3), x, target=TARGET, n_steps=steps)
    rows = steps + 1
    floor = _layer_floor(model, 3, rows_of(x, rows))
    return Bench(p, c, floor, f"fwd + bwd to layer3, {rows} rows")


_GRAD = "one forward+backward to the inputs over the {} batch"
_FWD = "no-grad forwards of {}, at the fastest pass size (1 to 64 images)"

WORKLOADS = [
    Workload("resnet18/saliency", "Saliency, batch 8", _GRAD.format("8-image"), saliency, True),
    Workload(
        "resnet18/ig", "IntegratedGradients, n_steps=50", _GRAD.format("50-step expanded"),
        integrated_gradients, True,
    ),
    Workload(
        "resnet18/gradient_shap", "GradientShap, n_samples=20, 4 baselines",
        _GRAD.format("20-sample"), gradient_shap, True,
    ),
    Workload(
        "resnet18/noise_tunnel_ig", "NoiseTunnel(IG) smoothgrad, nt_samples=5, n_steps=10",
        _GRAD.format("5x10 expanded"), noise_tunnel, True,
    ),
    Workload(
        "resnet18/deeplift", "DeepLift, zero baseline (Captum: separate-ReLU twin)",
        _GRAD.format("input+baseline (2-row)"), deep_lift, True,
    ),
    Workload(
        "resnet18/occlusion", "Occlusion, 15x15 window, stride 8 (729 windows)",
        _FWD.format("the 729 occluded images + the original"), occlusion, True,
    ),
    Workload(
        "resnet18/feature_ablation", "FeatureAblation, 64-segment mask",
        _FWD.format("the 64 ablated images + the original"), feature_ablation, True,
    ),
    Workload(
        "resnet18/shapley_value_sampling", "ShapleyValueSampling, 64 segments, n_samples=4",
        _FWD.format("n_samples*64 prefixes + the baseline"), shapley_value_sampling, True,
    ),
    Workload(
        "resnet18/lime", "Lime, 64 segments, n_samples=200",
        _FWD.format("the 200 sampled images"), lime, True,
    ),
    Workload(
        "resnet18/kernel_shap", "KernelShap, 64 segments, n_samples=200",
        _FWD.format("the 200 sampled images"), kernel_shap, True,
    ),
    Workload(
        "resnet18/layer_grad_cam", "LayerGradCam on layer4",
        "one forward + backward from the target score to layer4's output", layer_grad_cam, True,
    ),
    Workload(
        "resnet18/layer_conductance", "LayerConductance on layer3, n_steps=50",
        "one forward + backward to layer3's output over the 51 path points",
        layer_conductance, True,
    ),
]  # fmt: skip
