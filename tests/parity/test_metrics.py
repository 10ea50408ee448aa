"""infidelity and sensitivity_max give Captum's numbers under the same seeds (Captum is a
test oracle only). Random perturbations line up because both split the samples into the same
chunks and call ``perturb_func`` on the same repeated batches."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from perspicio import attr as ours
from perspicio import metrics
from perspicio.testing import ConvNet, MultiInputModel, ReLUMLP

captum_metrics = pytest.importorskip("captum.metrics")
captum_attr = pytest.importorskip("captum.attr")

TAB = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
IMG = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
MULTI = (
    torch.randn(3, 4, generator=torch.Generator().manual_seed(2)),
    torch.randn(3, 3, generator=torch.Generator().manual_seed(3)),
)
SCALE = torch.tensor([0.5, 1.0, 2.0])


def both(fn_name: str, *args: Any, seed: int = 7, **kwargs: Any) -> tuple[Any, Any]:
    torch.manual_seed(seed)
    mine = getattr(metrics, fn_name)(*args, **kwargs)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(captum_metrics, fn_name)(*args, **kwargs)
    return mine, theirs


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-4)


def noise(inputs: Any) -> Any:
    """Gaussian perturbation of every input, returning (perturbations, perturbed)."""
    xs = inputs if isinstance(inputs, tuple) else (inputs,)
    ps = tuple(0.1 * torch.randn_like(x) for x in xs)
    pert = tuple(x - p for x, p in zip(xs, ps))
    return (ps, pert) if isinstance(inputs, tuple) else (ps[0], pert[0])


@metrics.infidelity_perturb_func_decorator(True)
def drop_random(inputs: Any, baselines: Any = None) -> Any:
    """Set a random 30% of each input to its baseline (decorated: global perturbations)."""
    xs = inputs if isinstance(inputs, tuple) else (inputs,)
    bs = baselines if isinstance(baselines, tuple) else (baselines,) * len(xs)
    out = tuple(
        torch.where(torch.rand_like(x) < 0.3, x * 0 + (0 if b is None else b), x)
        for x, b in zip(xs, bs)
    )
    return out if isinstance(inputs, tuple) else out[0]


@pytest.mark.parametrize("mepb", [None, 4, 9, 13, 100])
@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_tabular(mepb: int | None, normalize: bool) -> None:
    model = ReLUMLP()
    attributions = ours.Saliency(model).attribute(TAB, target=[0, 1, 2, 0], abs=False)
    mine, theirs = both(
        "infidelity",
        model,
        noise,
        TAB,
        attributions,
        target=[0, 1, 2, 0],
        n_perturb_samples=7,
        max_examples_per_batch=mepb,
        normalize=normalize,
    )
    close(mine, theirs)


@pytest.mark.parametrize("mepb", [None, 3, 7])
@pytest.mark.parametrize("baselines", [None, 0.2, torch.full((3, 1, 8, 8), 0.1)])
def test_infidelity_images_with_baselines(mepb: int | None, baselines: Any) -> None:
    model = ConvNet()
    attributions = ours.IntegratedGradients(model).attribute(IMG, target=2, n_steps=8)
    mine, theirs = both(
        "infidelity",
        model,
        drop_random,
        IMG,
        attributions,
        baselines=baselines,
        target=2,
        n_perturb_samples=5,
        max_examples_per_batch=mepb,
        normalize=True,
    )
    close(mine, theirs)


@pytest.mark.parametrize("mepb", [None, 5])
def test_infidelity_multi_input_with_args(mepb: int | None) -> None:
    model = MultiInputModel()
    attributions = ours.InputXGradient(model).attribute(
        MULTI, target=1, additional_forward_args=(SCALE,)
    )
    mine, theirs = both(
        "infidelity",
        model,
        noise,
        MULTI,
        attributions,
        additional_forward_args=(SCALE,),
        target=torch.tensor([0, 1, 2]),
        n_perturb_samples=4,
        max_examples_per_batch=mepb,
    )
    close(mine, theirs)


def test_infidelity_decorator_without_multiplying() -> None:
    @metrics.infidelity_perturb_func_decorator(False)
    def shrink(x: torch.Tensor) -> torch.Tensor:
        return x * torch.rand_like(x)

    captum_shrink = captum_metrics.infidelity_perturb_func_decorator(False)(
        lambda x: x * torch.rand_like(x)
    )
    model = ReLUMLP()
    attributions = ours.Saliency(model).attribute(TAB, target=1, abs=False)
    torch.manual_seed(3)
    mine = metrics.infidelity(model, shrink, TAB, attributions, target=1, n_perturb_samples=6)
    torch.manual_seed(3)
    theirs = captum_metrics.infidelity(
        model, captum_shrink, TAB, attributions, target=1, n_perturb_samples=6
    )
    close(mine, theirs)


@pytest.mark.parametrize("mepb", [None, 4, 10, 50])
@pytest.mark.parametrize("norm_ord", ["fro", 1, float("inf")])
def test_sensitivity_max_saliency(mepb: int | None, norm_ord: Any) -> None:
    model = ReLUMLP()
    explain = ours.Saliency(model).attribute
    mine, theirs = both(
        "sensitivity_max",
        explain,
        TAB,
        perturb_radius=0.1,
        n_perturb_samples=6,
        norm_ord=norm_ord,
        max_examples_per_batch=mepb,
        target=[0, 1, 2, 0],
    )
    close(mine, theirs)


def test_sensitivity_max_against_captums_own_method() -> None:
    model = ConvNet()
    torch.manual_seed(5)
    mine = metrics.sensitivity_max(
        ours.IntegratedGradients(model).attribute,
        IMG,
        n_perturb_samples=4,
        max_examples_per_batch=5,
        target=[1, 2, 3],
        baselines=torch.zeros(3, 1, 8, 8),
        n_steps=6,
    )
    torch.manual_seed(5)
    theirs = captum_metrics.sensitivity_max(
        captum_attr.IntegratedGradients(model).attribute,
        IMG,
        n_perturb_samples=4,
        max_examples_per_batch=5,
        target=[1, 2, 3],
        baselines=torch.zeros(3, 1, 8, 8),
        n_steps=6,
    )
    close(mine, theirs, atol=1e-4)


def test_sensitivity_max_multi_input_custom_perturbation() -> None:
    model = MultiInputModel()

    def perturb(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(x + 0.05 * torch.randn_like(x) for x in inputs)

    mine, theirs = both(
        "sensitivity_max",
        ours.InputXGradient(model).attribute,
        MULTI,
        perturb_func=perturb,
        n_perturb_samples=5,
        max_examples_per_batch=7,
        target=2,
        additional_forward_args=(SCALE,),
    )
    close(mine, theirs)


def test_default_perturb_func_draws_captums_noise() -> None:
    torch.manual_seed(11)
    (mine,) = metrics.default_perturb_func(TAB, 0.3)
    torch.manual_seed(11)
    (theirs,) = captum_metrics._core.sensitivity.default_perturb_func(TAB, 0.3)
    torch.testing.assert_close(mine, theirs, atol=0, rtol=0)
