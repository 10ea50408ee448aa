"""The perturbation family gives Captum's numbers (Captum is a test oracle only)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from perspicio import attr as ours
from perspicio.testing import ConvNet, MultiInputModel, ReLUMLP, TinyResNet

captum_attr = pytest.importorskip("captum.attr")

MLP, MULTI, CONV = ReLUMLP(), MultiInputModel(), ConvNet()
G = torch.Generator().manual_seed(20)
X = torch.randn(4, 6, generator=G)
XS = (torch.randn(3, 4, generator=G), torch.randn(3, 3, generator=G))
SCALE = torch.rand(3, generator=G)
IMG = torch.rand(2, 1, 8, 8, generator=G)
GROUPS = torch.tensor([[0, 0, 1, 2, 2, 3]])
PER_EXAMPLE = torch.randint(0, 3, (4, 6), generator=G)
FIVE = torch.tensor([[0, 1, 2, 3, 4, 4]])  # Captum enumerates 5! orders
CROSS = (torch.tensor([[0, 1, 1, 2]]), torch.tensor([[2, 3, 0]]))


def close(a: Any, b: Any, atol: float = 1e-5) -> None:
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y.to(x.dtype), atol=atol, rtol=1e-4)


def both(
    name: str, forward: Any, *args: Any, ctor: dict[str, Any] | None = None, **kw: Any
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(captum_attr, name)(forward, **(ctor or {})).attribute(*args, **kw)
    close(getattr(ours, name)(forward, **(ctor or {})).attribute(*args, **kw), theirs)


ABLATION = [
    (MLP, X, {"target": 1}),
    (MLP, X, {"target": [0, 1, 2, 0], "baselines": 0.3, "perturbations_per_eval": 3}),
    (MLP, X, {"target": 2, "feature_mask": GROUPS, "baselines": torch.randn(1, 6, generator=G)}),
    (MLP, X, {"target": 0, "feature_mask": PER_EXAMPLE, "perturbations_per_eval": 2}),
    (MLP, X, {}),  # (N, 3) output without a target: one row per output value
    (lambda x: MLP(x)[:, 0].sum(), X, {"feature_mask": GROUPS}),  # one value per batch
    (MULTI, XS, {"target": 1, "feature_mask": CROSS, "additional_forward_args": (SCALE,)}),
    (MULTI, XS, {"target": 0, "baselines": (0.5, torch.zeros(1, 3))}),
    (
        CONV,
        IMG,
        {
            "target": 4,
            "feature_mask": torch.arange(16)
            .reshape(1, 1, 4, 4)
            .repeat_interleave(2, 2)
            .repeat_interleave(2, 3),
        },
    ),
]


@pytest.mark.parametrize(("model", "inputs", "kwargs"), ABLATION)
def test_feature_ablation(model: Any, inputs: Any, kwargs: dict[str, Any]) -> None:
    both("FeatureAblation", model, inputs, **kwargs)


@pytest.mark.parametrize(
    ("inputs", "kwargs"),
    [
        (IMG, {"sliding_window_shapes": (1, 3, 3), "target": 3}),
        (
            IMG,
            {
                "sliding_window_shapes": (1, 4, 3),
                "strides": (1, 2, 3),
                "baselines": 0.5,
                "target": 1,
            },
        ),
        (
            IMG,
            {
                "sliding_window_shapes": (1, 5, 5),
                "strides": 4,
                "target": 0,
                "perturbations_per_eval": 3,
            },
        ),
        (
            torch.rand(1, 3, 8, 8, generator=G),
            {"sliding_window_shapes": (3, 2, 2), "strides": 2, "target": 2},
        ),
    ],
)
def test_occlusion(inputs: Tensor, kwargs: dict[str, Any]) -> None:
    model = TinyResNet() if inputs.shape[1] == 3 else CONV
    both("Occlusion", model, inputs, **kwargs)


def test_occlusion_two_inputs() -> None:
    kw = {"sliding_window_shapes": ((2,), (1,)), "strides": ((2,), (1,)), "target": 2}
    both("Occlusion", MULTI, XS, additional_forward_args=(SCALE,), **kw)


@pytest.mark.parametrize(
    ("model", "inputs", "kwargs"),
    [
        (MLP, X, {"target": 1, "feature_mask": GROUPS}),
        (MLP, X, {"target": [2, 1, 0, 0], "baselines": 0.2, "feature_mask": FIVE}),
        (MLP, X, {"target": 0, "feature_mask": PER_EXAMPLE, "perturbations_per_eval": 4}),
        (MLP, X, {"feature_mask": GROUPS}),  # (N, 3) output: (N, 3, 6) attributions
        (lambda x: MLP(x)[:, 1].sum(), X, {"feature_mask": GROUPS}),
        (MULTI, XS, {"target": 2, "feature_mask": CROSS, "additional_forward_args": (SCALE,)}),
    ],
)
def test_shapley_values(model: Any, inputs: Any, kwargs: dict[str, Any]) -> None:
    both("ShapleyValues", model, inputs, **kwargs)


def test_feature_permutation_with_a_deterministic_perm_func() -> None:
    def roll(x: Tensor, mask: Tensor) -> Tensor:
        return torch.where(mask.bool(), x.roll(1, 0), x)

    both("FeaturePermutation", MLP, X, ctor={"perm_func": roll}, target=1, feature_mask=GROUPS)
    both("FeaturePermutation", lambda x: MLP(x).sum(), X, ctor={"perm_func": roll})


def test_dataloader_attribution() -> None:
    data = TensorDataset(torch.randn(9, 6, generator=G), torch.randint(0, 3, (9,), generator=G))
    loader = DataLoader(data, batch_size=4)

    def reduce(acc: Any, out: Tensor, batch: Any) -> Tensor:
        loss = torch.nn.functional.cross_entropy(out, batch[1], reduction="sum")
        return loss if acc is None else acc + loss

    for kw in ({}, {"feature_mask": GROUPS, "baselines": 0.5}, {"return_input_shape": False}):
        got = ours.DataLoaderAttribution(ours.FeatureAblation(MLP)).attribute(
            loader, input_roles=(0, 2), reduce=reduce, **kw
        )
        theirs = captum_attr.DataLoaderAttribution(captum_attr.FeatureAblation(MLP)).attribute(
            loader, input_roles=(0, 2), reduce=reduce, **kw
        )
        close(got, theirs)
