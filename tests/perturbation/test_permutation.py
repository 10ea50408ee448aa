from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from perspicio.attr import FeaturePermutation
from perspicio.perturbation.permutation import _permute_feature, random_permutations
from perspicio.testing import MultiInputModel, ReLUMLP
from tests.helpers import CountingModel


class IgnoresFeature(nn.Module):
    """Uses every feature but the third."""

    def __init__(self) -> None:
        super().__init__()
        self.net = ReLUMLP()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x * torch.tensor([1.0, 1, 0, 1, 1, 1]))


@pytest.mark.parametrize("per_eval", [1, None])
def test_a_feature_the_model_ignores_gets_zero(per_eval: Any) -> None:
    torch.manual_seed(0)
    model = IgnoresFeature()
    x = torch.randn(10, 6)
    loss = lambda t: model(t)[:, 0].pow(2).mean()  # noqa: E731
    attr = FeaturePermutation(loss).attribute(x, perturbations_per_eval=per_eval)
    assert attr.shape == (1, 6)
    assert attr[0, 2] == 0 and (attr[0, [0, 1, 3, 4, 5]] != 0).all()


def test_matches_a_loop_over_features_with_the_same_draws() -> None:
    model = ReLUMLP()
    x = torch.randn(8, 6)
    torch.manual_seed(5)
    attr = FeaturePermutation(model).attribute(x, target=1)
    torch.manual_seed(5)
    perms = random_permutations(6, 8)
    with torch.no_grad():
        base = model(x)[:, 1]
        for j in range(6):
            shuffled = x.clone()
            shuffled[:, j] = x[perms[j], j]
            torch.testing.assert_close(attr[:, j], base - model(shuffled)[:, 1])


def test_cross_tensor_groups_share_one_shuffle() -> None:
    model = MultiInputModel()
    a, b = torch.randn(6, 4), torch.randn(6, 3)
    masks = (torch.tensor([[0, 0, 0, 0]]), torch.tensor([[0, 1, 1]]))
    torch.manual_seed(2)
    attr = FeaturePermutation(model).attribute((a, b), target=0, feature_mask=masks)
    torch.manual_seed(2)
    perm = random_permutations(2, 6)[0]
    with torch.no_grad():
        shuffled_b = b.clone()
        shuffled_b[:, 0] = b[perm, 0]
        expected = model(a, b)[:, 0] - model(a[perm], shuffled_b)[:, 0]
    torch.testing.assert_close(attr[0][:, 0], expected)
    torch.testing.assert_close(attr[1][:, 0], expected)


def test_custom_perm_func_is_called_per_feature() -> None:
    calls: list[tuple[int, ...]] = []

    def reverse(x: Tensor, mask: Tensor) -> Tensor:
        calls.append(tuple(mask.shape))
        return torch.where(mask, x.flip(0), x)

    model = ReLUMLP()
    x = torch.randn(4, 6)
    attr = FeaturePermutation(model, perm_func=reverse).attribute(
        x, target=0, feature_mask=torch.tensor([[0, 0, 1, 1, 2, 2]]), perturbations_per_eval=2
    )
    assert calls == [(1, 6)] * 3
    with torch.no_grad():
        flipped = x.clone()
        flipped[:, :2] = x.flip(0)[:, :2]
        torch.testing.assert_close(attr[:, 0], model(x)[:, 0] - model(flipped)[:, 0])


def test_default_perm_func_never_returns_the_identity() -> None:
    torch.manual_seed(0)
    perms = random_permutations(500, 2)
    assert (perms == torch.tensor([1, 0])).all()
    x = torch.arange(3.0).reshape(3, 1)
    out = _permute_feature(x, torch.ones(1, 1, dtype=torch.bool))
    assert sorted(out.flatten().tolist()) == [0, 1, 2] and not torch.equal(out, x)


def test_attribute_future_matches_attribute() -> None:
    model = ReLUMLP()

    def remote(t: Tensor) -> torch.futures.Future[Tensor]:
        fut: torch.futures.Future[Tensor] = torch.futures.Future()
        fut.set_result(model(t).sum())
        return fut

    x = torch.randn(5, 6)
    torch.manual_seed(1)
    got = FeaturePermutation(remote).attribute_future(x).wait()
    torch.manual_seed(1)
    torch.testing.assert_close(got, FeaturePermutation(lambda t: model(t).sum()).attribute(x))


def test_a_batch_of_one_is_refused_before_any_model_call() -> None:
    model = CountingModel(ReLUMLP())
    with pytest.raises(ValueError, match="needs at least 2 examples; got a batch of 1"):
        FeaturePermutation(model).attribute(torch.randn(1, 6), target=0)
    assert model.calls == 0
    with pytest.raises(ValueError, match="integer feature ids"):
        FeaturePermutation(model).attribute(torch.randn(3, 6), feature_mask=torch.full((1, 6), 0.5))
    assert model.calls == 0


def test_perm_func_of_the_wrong_shape_is_named() -> None:
    method = FeaturePermutation(ReLUMLP(), perm_func=lambda x, mask: x[:2])
    with pytest.raises(ValueError, match=r"perm_func returned \(2, 6\) for an input of shape"):
        method.attribute(torch.randn(3, 6), target=0)
