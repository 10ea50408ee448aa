"""Shared pieces: running top-k, merged batches, loss checks; no residue for any class."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import perspicio.influence as inf
from perspicio._core.validate import ArgumentError
from perspicio.influence.base import TopK, check_loss_fn, merged


@pytest.mark.parametrize("block", [1, 3, 7, 50])
@pytest.mark.parametrize("largest", [True, False])
def test_running_top_k_equals_top_k_of_everything(block: int, largest: bool) -> None:
    torch.manual_seed(0)
    scores = torch.randn(4, 23)
    acc = TopK(5, largest)
    for start in range(0, 23, block):
        acc.add(scores[:, start : start + block])
    result = acc.result(4)
    expected = torch.topk(scores, 5, dim=1, largest=largest)
    assert torch.equal(result.indices, expected.indices)
    assert torch.equal(result.influence_scores, expected.values)


def test_merged_batches_keep_order_and_content() -> None:
    X, y = torch.arange(10.0)[:, None], torch.arange(10)
    out = list(merged(DataLoader(TensorDataset(X, y), batch_size=3), rows=5))
    assert [len(b[0]) for b in out] == [6, 4]
    assert torch.equal(torch.cat([b[1] for b in out]), y)
    mixed = list(merged([(X[:2], ["a", "b"]), (X[2:4], y[2:4])], rows=100))
    assert len(mixed) == 2 and mixed[0][1] == ["a", "b"]


def test_loss_checks() -> None:
    assert check_loss_fn(None, "loss_fn") == "sum"
    assert check_loss_fn(nn.MSELoss(reduction="mean"), "loss_fn", True) == "mean"
    assert check_loss_fn(lambda out, y: out, "loss_fn", False) == "none"
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        check_loss_fn(3, "loss_fn")
    with pytest.raises(ArgumentError, match="got 'none'"):
        check_loss_fn(nn.MSELoss(reduction="none"), "loss_fn", True)


def snapshot(model: nn.Module) -> list[Any]:
    return [
        model.training,
        [(n, p.detach().clone(), p.requires_grad, p.grad) for n, p in model.named_parameters()],
        [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()],
    ]


def same(a: list[Any], b: list[Any]) -> bool:
    if a[0] != b[0] or a[2] != b[2]:
        return False
    return all(
        x[0] == y[0] and torch.equal(x[1], y[1]) and x[2] == y[2] and x[3] is y[3]
        for x, y in zip(a[1], b[1])
    )


CE = nn.CrossEntropyLoss
MAKERS: dict[str, Callable[[nn.Module, Any, str], Any]] = {
    "TracInCP": lambda m, d, p: inf.TracInCP(m, d, [p], loss_fn=CE(reduction="none")),
    "TracInCPFast": lambda m, d, p: inf.TracInCPFast(m, m[2], d, [p], loss_fn=CE(reduction="sum")),
    "TracInCPFastRandProj": lambda m, d, p: inf.TracInCPFastRandProj(
        m, m[2], d, [p], loss_fn=CE(reduction="sum"), projection_dim=4
    ),
    "NaiveInfluenceFunction": lambda m, d, p: inf.NaiveInfluenceFunction(
        m, d, p, loss_fn=CE(reduction="none")
    ),
    "ArnoldiInfluenceFunction": lambda m, d, p: inf.ArnoldiInfluenceFunction(
        m, d, p, loss_fn=CE(reduction="none"), arnoldi_dim=8, projection_dim=3
    ),
    "EKFACInfluence": lambda m, d, p: inf.EKFACInfluence(m, d, p, loss_fn=CE(reduction="none")),
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_the_model_is_left_as_it_was(name: str, tmp_path: Path) -> None:
    """The checkpoint differs from the model's weights: they must come back after each call."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    model[0].bias.requires_grad_(False)
    model[2].weight.grad = torch.ones_like(model[2].weight)
    path = tmp_path / "ckpt.pt"
    torch.save({k: v + 0.5 for k, v in model.state_dict().items()}, path)
    X, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    before = snapshot(model)
    method = MAKERS[name](model, TensorDataset(X, y), str(path))
    assert same(snapshot(model), before)
    method.influence((X[:2], y[:2]), k=None)
    method.influence((X[:2], y[:2]), k=2)
    method.self_influence()
    assert same(snapshot(model), before)


@pytest.mark.parametrize(
    "cls",
    [c for c in vars(inf).values() if isinstance(c, type) and issubclass(c, inf.DataInfluence)],
)
def test_get_name_is_the_class_name(cls: type) -> None:
    assert cls.get_name() == cls.__name__
