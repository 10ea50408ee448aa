"""Conformance cases for the metrics: each metric, wrapped to look like ``attribute``.

The battery then checks their shapes, batch and chunk invariance (``max_examples_per_batch``),
determinism, and that no hook, parameter or mode of the model is left changed, also when the
model fails half-way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from perspicio import attr, metrics
from perspicio.testing import ConvNet, MultiInputModel, ReLUMLP
from tests.conformance.battery import Case


class _Metric:
    """``attribute(inputs, **kw)`` runs ``fn(model, inputs, **kw)``: one metric as a method."""

    def __init__(self, model: nn.Module, fn: Callable[..., Any]) -> None:
        self.model, self.fn = model, fn

    def attribute(self, inputs: Any, **kwargs: Any) -> Any:
        return self.fn(self.model, inputs, **kwargs)


def _build(model_cls: Callable[[], nn.Module], fn: Callable[..., Any]) -> Callable[[], Any]:
    def build() -> tuple[nn.Module, Any]:
        model = model_cls()
        return model, _Metric(model, fn)

    return build


def _per_example(model: nn.Module, inputs: Any) -> tuple[torch.Size, ...]:
    n = (inputs[0] if isinstance(inputs, tuple) else inputs).shape[0]
    return (torch.Size([n]),)


def _fixed_perturbation(inputs: Any, baselines: Any = None) -> Any:
    xs = inputs if isinstance(inputs, tuple) else (inputs,)
    ps = tuple(0.1 * x.cos() for x in xs)
    pert = tuple(x - p for x, p in zip(xs, ps))
    return (ps, pert) if isinstance(inputs, tuple) else (ps[0], pert[0])


def x_mlp() -> torch.Tensor:
    return torch.randn(4, 6, generator=torch.Generator().manual_seed(0))


def x_multi() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 4, generator=g), torch.randn(3, 3, generator=g)


def x_img() -> torch.Tensor:
    return torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(2))


A_MLP = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))
A_MULTI = (torch.randn(3, 4), torch.randn(3, 3))
A_IMG = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(4))
SCALE = torch.tensor([0.5, 1.0, 2.0])
PATCHES = (torch.arange(64).reshape(1, 1, 8, 8) // 8 // 2) * 4 + torch.arange(8) // 2


def _infidelity(model: nn.Module, inputs: Any, **kw: Any) -> Any:
    return metrics.infidelity(model, _fixed_perturbation, inputs, **kw)


def _shift(inputs: Any) -> Any:
    """A deterministic perturbation, so that results do not depend on the chunks."""
    if isinstance(inputs, tuple):
        return tuple(x + 0.05 * x.sin() for x in inputs)
    return inputs + 0.05 * inputs.sin()


def _sensitivity(fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(model: nn.Module, inputs: Any, **kw: Any) -> Any:
        return fn(attr.Saliency(model).attribute, inputs, perturb_func=_shift, **kw)

    return run


def _auc(fn: Callable[..., Any]) -> Callable[..., Any]:
    return lambda model, inputs, **kw: fn(model, inputs, **kw).auc


def _randomisation(model: nn.Module, inputs: Any, **kw: Any) -> Any:
    return tuple(metrics.model_parameter_randomisation(model, attr.Saliency, inputs, **kw).values())


CASES = [
    Case(
        "metric-infidelity-mlp",
        _build(ReLUMLP, _infidelity),
        x_mlp,
        {"attributions": A_MLP, "target": [0, 1, 2, 0], "n_perturb_samples": 5},
        chunk_arg="max_examples_per_batch",
        chunk_values=(None, 4, 9),
        output=_per_example,
    ),
    Case(
        "metric-infidelity-multi-normalized",
        _build(MultiInputModel, _infidelity),
        x_multi,
        {
            "attributions": A_MULTI,
            "target": 1,
            "additional_forward_args": (SCALE,),
            "baselines": (0.1, torch.zeros(1, 3)),
            "n_perturb_samples": 4,
            "normalize": True,
        },
        chunk_arg="max_examples_per_batch",
        chunk_values=(None, 1, 7),
        output=_per_example,
    ),
    Case(
        "metric-sensitivity-max",
        _build(ReLUMLP, _sensitivity(metrics.sensitivity_max)),
        x_mlp,
        {"target": [0, 1, 2, 0], "n_perturb_samples": 5},
        chunk_arg="max_examples_per_batch",
        chunk_values=(None, 3, 8),
        output=_per_example,
    ),
    Case(
        "metric-sensitivity-avg-multi",
        _build(MultiInputModel, _sensitivity(metrics.sensitivity_avg)),
        x_multi,
        {"target": 2, "additional_forward_args": (SCALE,), "n_perturb_samples": 3},
        chunk_arg="max_examples_per_batch",
        chunk_values=(None, 1, 4),
        output=_per_example,
    ),
    Case(
        "metric-deletion-img-patches",
        _build(ConvNet, _auc(metrics.deletion_curve)),
        x_img,
        {"attributions": A_IMG, "target": 3, "feature_mask": PATCHES, "baselines": 0.5},
        chunk_arg="max_examples_per_batch",
        chunk_values=(None, 1, 5),
        output=_per_example,
    ),
    Case(
        "metric-insertion-multi",
        _build(MultiInputModel, _auc(metrics.insertion_curve)),
        x_multi,
        {"attributions": A_MULTI, "target": 0, "additional_forward_args": (SCALE,), "n_steps": 4},
        chunk_arg="max_examples_per_batch",
        chunk_values=(None, 2, 7),
        output=_per_example,
    ),
    Case(
        "metric-faithfulness-correlation",
        _build(ReLUMLP, metrics.faithfulness_correlation),
        x_mlp,
        {"attributions": A_MLP, "target": 1, "n_perturb_samples": 8, "subset_size": 2},
        chunk_arg="max_examples_per_batch",
        chunk_values=(None, 4, 11),
        output=_per_example,
        batch_invariant=False,
        random=True,
    ),
    Case(
        "metric-road-noise-free",
        _build(ConvNet, _auc(metrics.road)),
        x_img,
        {"attributions": A_IMG, "target": 5, "fractions": (0.25, 0.5), "noise": 0.0},
        chunk_arg="max_examples_per_batch",
        chunk_values=(None, 1, 3),
        output=_per_example,
        atol=1e-4,
    ),
    Case(
        "metric-randomisation",
        _build(ReLUMLP, _randomisation),
        x_mlp,
        {"target": [0, 1, 2, 0], "mode": "independent"},
        output=lambda model, inputs: (torch.Size([4]),) * 3,
        random=True,
    ),
]
