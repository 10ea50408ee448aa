from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from perspicio.attr import (
    DataLoaderAttribution,
    FeatureAblation,
    Occlusion,
    Saliency,
    ShapleyValues,
)
from perspicio.testing import ReLUMLP

G = torch.Generator().manual_seed(0)
X = torch.randn(10, 6, generator=G)
Y = torch.randint(0, 3, (10,), generator=G)
MODEL = ReLUMLP()


def summed_loss(acc: Tensor | None, out: Tensor, batch: tuple[Any, ...]) -> Tensor:
    loss = torch.nn.functional.cross_entropy(out, batch[1], reduction="sum")
    return loss if acc is None else acc + loss


def loss_of(x: Tensor) -> Tensor:
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(MODEL(x), Y, reduction="sum")


@pytest.mark.parametrize("per_pass", [1, 4, None])
def test_ablation_of_a_dataset_loss(per_pass: Any) -> None:
    loader = DataLoader(TensorDataset(X, Y), batch_size=4)
    mask = torch.tensor([[0, 0, 1, 1, 2, 3]])
    (attr,) = DataLoaderAttribution(FeatureAblation(MODEL)).attribute(
        loader, input_roles=(0, 2), reduce=summed_loss, feature_mask=mask, baselines=0.5,
        perturbations_per_pass=per_pass,
    )  # fmt: skip
    assert attr.shape == (1, 6)
    for g in range(4):
        sel = mask[0] == g
        ablated = torch.where(sel, torch.tensor(0.5), X)
        torch.testing.assert_close(
            attr[0, sel], (loss_of(X) - loss_of(ablated)).expand(int(sel.sum()))
        )


def test_feature_table_and_default_reduce() -> None:
    loader = DataLoader(TensorDataset(X), batch_size=3)
    score = lambda x: MODEL(x)[:, 1]  # noqa: E731
    dla = DataLoaderAttribution(FeatureAblation(score))
    table = dla.attribute(
        loader, feature_mask=torch.tensor([[0, 0, 2, 2, 2, 5]]), return_input_shape=False
    )
    assert table.shape == (10, 6)  # one row per example (outputs concatenated), ids 0 .. 5
    assert (table[:, [1, 3, 4]] == 0).all()
    (full,) = dla.attribute(loader)
    torch.testing.assert_close(full, FeatureAblation(score).attribute(X), atol=1e-6, rtol=1e-6)


def test_shapley_values_over_a_dataset_are_efficient() -> None:
    loader = DataLoader(TensorDataset(X, Y), batch_size=5)
    mask = torch.tensor([[0, 0, 1, 1, 2, 2]])
    (attr,) = DataLoaderAttribution(ShapleyValues(MODEL)).attribute(
        loader, input_roles=(0, 2), reduce=summed_loss, feature_mask=mask
    )
    total = attr[0, [0, 2, 4]].sum()
    torch.testing.assert_close(
        total, loss_of(X) - loss_of(torch.zeros_like(X)), atol=1e-4, rtol=1e-5
    )


def test_roles_pass_elements_to_the_model_or_only_to_reduce() -> None:
    scale = torch.rand(10, generator=G)
    loader = DataLoader(TensorDataset(X, scale, Y), batch_size=4)
    seen: list[int] = []

    def forward(x: Tensor, s: Tensor) -> Tensor:
        seen.append(len(x))
        return MODEL(x) * s.unsqueeze(1)

    def reduce(acc: Tensor | None, out: Tensor, batch: tuple[Any, ...]) -> Tensor:
        assert len(batch) == 3 and torch.is_tensor(batch[2])
        total = out.gather(1, batch[2].unsqueeze(1)).sum()
        return total if acc is None else acc + total

    (attr,) = DataLoaderAttribution(FeatureAblation(forward)).attribute(
        loader, input_roles=(0, 1, 2), reduce=reduce
    )
    with torch.no_grad():
        expected = FeatureAblation(
            lambda x: (MODEL(x) * scale.unsqueeze(1))[torch.arange(10), Y].sum()
        ).attribute(X)
    torch.testing.assert_close(attr, expected, atol=1e-5, rtol=1e-5)
    assert set(seen) <= {4, 2}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_roles": (0,)}, "input_roles has 1 entries but the DataLoader returns 2"),
        ({"input_roles": (2, 2)}, "at least one element 0"),
        ({"input_roles": (0, 5)}, "must be 0, 1 or 2"),
        (
            {"input_roles": (0, 2), "feature_mask": torch.zeros(4, 6, dtype=torch.long)},
            "first dimension 1",
        ),
        ({"input_roles": (0, 2), "baselines": torch.zeros(4, 6)}, "first dimension 1"),
        (
            {"input_roles": (0, 2), "perturbations_per_pass": 0},
            "perturbations_per_pass must be at least 1",
        ),
    ],
)
def test_bad_arguments_are_refused(kwargs: Any, message: str) -> None:
    loader = DataLoader(TensorDataset(X, Y), batch_size=4)
    with pytest.raises(ValueError, match=message):
        DataLoaderAttribution(FeatureAblation(MODEL)).attribute(loader, **kwargs)


@pytest.mark.parametrize("method", [Occlusion(MODEL), Saliency(MODEL)])
def test_only_feature_switching_methods_are_wrapped(method: Any) -> None:
    with pytest.raises(TypeError, match="wraps a FeatureAblation"):
        DataLoaderAttribution(method)
    with pytest.raises(NotImplementedError):
        DataLoaderAttribution(FeatureAblation(MODEL)).attribute_future()


@pytest.mark.parametrize("wrap", [lambda y: (y, y), lambda y: {"logits": y}])
def test_tuple_or_dict_model_outputs_are_named(wrap: Any) -> None:
    from perspicio.attr import DataLoaderAttribution, FeatureAblation

    mlp = ReLUMLP()
    loader = DataLoader(TensorDataset(torch.randn(5, 6)), batch_size=2)
    kind = type(wrap(torch.zeros(1))).__name__
    method = DataLoaderAttribution(FeatureAblation(lambda x: wrap(mlp(x))))
    with pytest.raises(TypeError, match=f"forward_func returned a {kind}: the default reduce"):
        method.attribute(loader)
