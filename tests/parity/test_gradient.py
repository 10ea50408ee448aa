"""The gradient family gives Captum's numbers (Captum is a test oracle only)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

from perspicio import attr as ours
from perspicio.testing import ConvNet, MultiInputModel, ReLUMLP

captum_attr = pytest.importorskip("captum.attr")


def pool_net() -> nn.Module:
    # Captum's DeepLift loses completeness when a ReLU feeds a MaxPool directly, so the
    # parity model keeps them apart (perspicio handles that case; see test_deep_lift).
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
        nn.MaxPool2d(2), nn.Sigmoid(), nn.Flatten(), nn.Linear(64, 5),
    )  # fmt: skip


def close(a: Any, b: Any, atol: float = 1e-5) -> None:
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        torch.testing.assert_close(x, y, atol=atol, rtol=1e-4)


def run_both(
    name: str, model: nn.Module, *args: Any, ctor: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[Any, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(captum_attr, name)(model, **(ctor or {})).attribute(*args, **kwargs)
    return getattr(ours, name)(model, **(ctor or {})).attribute(*args, **kwargs), theirs


IMG = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
TAB = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "method", ["riemann_left", "riemann_right", "riemann_middle", "gausslegendre"]
)
@pytest.mark.parametrize("ibs", [None, 7])
def test_integrated_gradients(method: str, ibs: int | None) -> None:
    close(
        *run_both(
            "IntegratedGradients",
            ConvNet(),
            IMG,
            0.1,
            target=[1, 2, 3],
            n_steps=12,
            method=method,
            internal_batch_size=ibs,
        )
    )


def test_integrated_gradients_trapezoid_differs_by_captums_weight_sum() -> None:
    # Captum's trapezoid weights sum to (n-1)/n instead of 1; ours are the trapezoid rule.
    n = 10
    a, b = run_both(
        "IntegratedGradients", ReLUMLP(), TAB, target=0, n_steps=n, method="riemann_trapezoid"
    )
    close(a * (n - 1) / n, b)


def test_integrated_gradients_multi_input_delta() -> None:
    x = (torch.randn(3, 4), torch.randn(3, 3))
    scale = torch.tensor([1.0, 0.5, 2.0])
    (a, da), (b, db) = run_both(
        "IntegratedGradients",
        MultiInputModel(),
        x,
        target=1,
        additional_forward_args=(scale,),
        return_convergence_delta=True,
    )
    close(a, b)
    close(da, db, atol=1e-5)


@pytest.mark.parametrize("name", ["Saliency", "InputXGradient", "GuidedBackprop", "Deconvolution"])
@pytest.mark.parametrize("model_input", ["conv", "mlp"])
def test_plain_gradients(name: str, model_input: str) -> None:
    model, x = (ConvNet(), IMG) if model_input == "conv" else (ReLUMLP(), TAB)
    close(*run_both(name, model, x, target=2))


@pytest.mark.parametrize("model_input", ["pool", "mlp"])
@pytest.mark.parametrize("multiply", [True, False])
def test_deeplift(model_input: str, multiply: bool) -> None:
    model, x = (pool_net(), IMG) if model_input == "pool" else (ReLUMLP(), TAB)
    base = torch.rand_like(x[:1]) * 0.2
    # float32 operation order differs around the pooling windows: ~1e-5 absolute
    close(
        *run_both("DeepLift", model, x, base, target=1, ctor={"multiply_by_inputs": multiply}),
        atol=5e-5,
    )


def test_deepliftshap() -> None:
    dist = torch.randn(5, 6, generator=torch.Generator().manual_seed(2))
    close(*run_both("DeepLiftShap", ReLUMLP(), TAB, dist, target=[0, 1, 2, 0]))


def test_activations_deeplift() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 5),
        nn.Sigmoid(),
        nn.Linear(5, 4),
        nn.Tanh(),
        nn.Linear(4, 4),
        nn.ELU(),
        nn.Linear(4, 2),
    )
    close(*run_both("DeepLift", model, TAB, target=1))
