"""Tabular workloads: a cheap MLP (100 -> 256 -> 256 -> 10), 16 rows, where overhead shows.

The perturbation methods run with the libraries' defaults (Captum evaluates one perturbation
per forward pass by default); the floors put every row the algorithm needs into one pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from benchmarks.models import TabularMLP
from benchmarks.workload import (
    Bench,
    Config,
    Workload,
    both,
    cached,
    grad_floor,
    identity,
    instance,
    load,
    perturbation_floor,
)

TARGET = 3
# pass sizes the forward floors try (capped at their rows), each over about 64k rows
CHUNKS, CALIBRATION_ROWS = (256, 1024, 4096, 16384, 65536), 65536


def _setup(cfg: Config) -> tuple[TabularMLP, Tensor]:
    model: TabularMLP = cached("tabular", cfg, TabularMLP)
    n = cfg.pick(16, 4)
    x = torch.randn(n, 100, generator=torch.Generator().manual_seed(0)).to(cfg.device)
    return model, x


def _floor(model: TabularMLP, x: Tensor, rows: int) -> tuple[Any, str]:
    return perturbation_floor(model, x, rows, CHUNKS, CALIBRATION_ROWS)


def _forward(cfg: Config, name: str, rows_per_example: int, **kwargs: Any) -> Bench:
    model, x = _setup(cfg)
    p, c = both(name, (model,), x, target=TARGET, **kwargs)
    return Bench(p, c, *_floor(model, x, rows_per_example * x.shape[0]))


def integrated_gradients(cfg: Config) -> Bench:
    model, x = _setup(cfg)
    steps = cfg.pick(50, 4)
    p, c = both("IntegratedGradients", (model,), x, target=TARGET, n_steps=steps)
    batch = x.repeat(steps, 1)  # (steps * N, 100)
    return Bench(p, c, grad_floor(identity, model, batch, TARGET), f"fwd+bwd {len(batch)} rows")


def kernel_shap(cfg: Config) -> Bench:
    n = cfg.pick(200, 20)
    return _forward(cfg, "KernelShap", n, baselines=0.0, n_samples=n)


def lime(cfg: Config) -> Bench:
    n = cfg.pick(200, 20)
    return _forward(cfg, "Lime", n, baselines=0.0, n_samples=n)


def feature_ablation(cfg: Config) -> Bench:
    return _forward(cfg, "FeatureAblation", 100 + 1, baselines=0.0)


def shapley_value_sampling(cfg: Config) -> Bench:
    n = cfg.pick(25, 2)
    return _forward(cfg, "ShapleyValueSampling", n * 100 + 1, baselines=0.0, n_samples=n)


def noise_perturbation(inputs: Tensor) -> tuple[Tensor, Tensor]:
    """Infidelity's perturbation: Gaussian noise ``I`` and the perturbed inputs ``x - I``."""
    noise = torch.randn_like(inputs) * 0.03
    return noise, inputs - noise


def _metric(library: str, name: str) -> Any:
    return load(library, "metrics", name)


def infidelity(cfg: Config) -> Bench:
    model, x = _setup(cfg)
    samples = 10
    attrs = instance("perspicio", "Saliency", model)
    attributions = x.clone() if isinstance(attrs, str) else attrs.attribute(x, target=TARGET)
    entries = []
    for library in ("perspicio", "captum"):
        fn = _metric(library, "infidelity")
        entries.append(
            fn if isinstance(fn, str) else _bind(
                fn, model, noise_perturbation, x, attributions, target=TARGET,
                n_perturb_samples=samples,
            )
        )  # fmt: skip
    return Bench(entries[0], entries[1], *_floor(model, x, (samples + 1) * x.shape[0]))


def sensitivity_max(cfg: Config) -> Bench:
    model, x = _setup(cfg)
    samples = 10
    entries = []
    for library in ("perspicio", "captum"):
        fn = _metric(library, "sensitivity_max")
        saliency = instance(library, "Saliency", model)
        if isinstance(fn, str) or isinstance(saliency, str):
            entries.append(fn if isinstance(fn, str) else saliency)
            continue
        entries.append(_bind(fn, saliency.attribute, x, target=TARGET, n_perturb_samples=samples))
    batch = x.repeat(samples + 1, 1)  # the inputs and every perturbed copy
    floor = grad_floor(identity, model, batch, TARGET)
    return Bench(entries[0], entries[1], floor, f"fwd+bwd {len(batch)} rows")


def _bind(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return lambda: fn(*args, **kwargs)


_ONE = "no-grad forwards of {}, at the fastest pass size"

WORKLOADS = [
    Workload(
        "tabular/ig", "IntegratedGradients, n_steps=50",
        "one forward+backward to the inputs over the 50x16 expanded batch",
        integrated_gradients,
    ),
    Workload(
        "tabular/kernel_shap", "KernelShap, n_samples=200",
        _ONE.format("the 200x16 sampled rows"), kernel_shap,
    ),
    Workload("tabular/lime", "Lime, n_samples=200", _ONE.format("the 200x16 sampled rows"), lime),
    Workload(
        "tabular/feature_ablation", "FeatureAblation, 100 features",
        _ONE.format("the 100x16 ablated rows + the 16 originals"), feature_ablation,
    ),
    Workload(
        "tabular/shapley_value_sampling", "ShapleyValueSampling, n_samples=25",
        _ONE.format("the 25x100x16 prefixes + the 16 baselines"), shapley_value_sampling,
    ),
    Workload(
        "tabular/infidelity", "infidelity, n_perturb_samples=10, Saliency attributions",
        _ONE.format("the 10x16 perturbed rows + the 16 originals"), infidelity,
    ),
    Workload(
        "tabular/sensitivity_max", "sensitivity_max of Saliency, n_perturb_samples=10",
        "one forward+backward to the inputs over the 16 originals and the 10x16 perturbed rows",
        sensitivity_max,
    ),
]  # fmt: skip
