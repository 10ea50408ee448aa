from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from perspicio.attr import ShapleyValues, ShapleyValueSampling
from perspicio.testing import MultiInputModel, ReLUMLP
from tests.helpers import CountingModel


def brute_force(f: Any, x: Tensor, baseline: Tensor, mask: Tensor) -> Tensor:
    """Average marginal contributions over every order of the groups, one example at a time."""
    groups = mask.unique().tolist()
    out = torch.zeros(len(x), len(groups))
    with torch.no_grad():
        for n in range(len(x)):

            def value(coalition: tuple[int, ...], n: int = n) -> float:
                keep = torch.isin(mask, torch.tensor(coalition, dtype=torch.long))
                return float(f(torch.where(keep, x[n : n + 1], baseline[n : n + 1])))

            for order in itertools.permutations(range(len(groups))):
                for i, g in enumerate(order):
                    before = tuple(groups[j] for j in order[:i])
                    out[n, g] += value((*before, groups[g])) - value(before)
    return out / math.factorial(len(groups))


class Game(nn.Module):
    """A small non-additive game: products, a max and an interaction."""

    def forward(self, x: Tensor) -> Tensor:
        return x[:, 0] * x[:, 1] + torch.maximum(x[:, 2], x[:, 3]) + x[:, 4] * x[:, 0] ** 2


@pytest.mark.parametrize("per_eval", [1, 5, None])
def test_exact_values_equal_brute_force_enumeration(per_eval: Any) -> None:
    x, base = torch.randn(3, 5), torch.randn(3, 5)
    mask = torch.arange(5).reshape(1, 5)
    got = ShapleyValues(Game()).attribute(x, baselines=base, perturbations_per_eval=per_eval)
    ref = brute_force(Game(), x, base, mask)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_exact_values_with_groups_and_a_network() -> None:
    model = ReLUMLP()
    x, base = torch.randn(2, 6), torch.zeros(2, 6)
    mask = torch.tensor([[0, 0, 3, 1, 1, 7]])
    got = ShapleyValues(model).attribute(x, target=2, feature_mask=mask)
    ref = brute_force(lambda t: model(t)[:, 2], x, base, mask)  # groups 0, 1, 3, 7
    torch.testing.assert_close(got[:, [0, 3, 2, 5]], ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(got[:, 0], got[:, 1]) and torch.equal(got[:, 3], got[:, 4])


def test_sampling_converges_to_the_exact_values() -> None:
    x = torch.randn(2, 5)
    exact = ShapleyValues(Game()).attribute(x)
    torch.manual_seed(0)
    rough = ShapleyValueSampling(Game()).attribute(x, n_samples=10)
    fine = ShapleyValueSampling(Game()).attribute(x, n_samples=1000)
    assert (fine - exact).abs().mean() < 0.25 * (rough - exact).abs().mean()
    assert (fine - exact).abs().max() < 0.08 * exact.abs().max()


@pytest.mark.parametrize("cls", [ShapleyValues, ShapleyValueSampling])
def test_efficiency_sum_is_f_x_minus_f_baseline(cls: type) -> None:
    model = ReLUMLP()
    x, base = torch.randn(4, 6), torch.randn(1, 6)
    torch.manual_seed(1)
    kw = {"n_samples": 3} if cls is ShapleyValueSampling else {}
    attr = cls(model).attribute(x, baselines=base, target=[0, 1, 2, 0], **kw)
    with torch.no_grad():
        gap = model(x) - model(base.expand_as(x))
    expected = gap[torch.arange(4), torch.tensor([0, 1, 2, 0])]
    torch.testing.assert_close(attr.sum(1), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", [ShapleyValues, ShapleyValueSampling])
def test_dummy_features_get_zero_and_exact_values_are_symmetric(cls: type) -> None:
    f = lambda t: t[:, 0] * t[:, 1] + 0 * t[:, 2]  # noqa: E731
    x = torch.tensor([[2.0, 2.0, 5.0]])
    attr = cls(f).attribute(x)
    assert attr[0, 2] == 0
    torch.testing.assert_close(attr.sum(), torch.tensor(4.0))
    if cls is ShapleyValues:  # sampling is symmetric only in expectation
        torch.testing.assert_close(attr, torch.tensor([[2.0, 2.0, 0.0]]))


def test_output_shapes_follow_the_model_output() -> None:
    model = ReLUMLP()
    x = torch.randn(3, 6)
    mask = torch.tensor([[0, 0, 1, 1, 2, 2]])
    multi = ShapleyValues(model).attribute(x, feature_mask=mask)  # (3, 3) output
    assert multi.shape == (3, 3, 6)
    torch.testing.assert_close(
        multi[:, 1], ShapleyValues(model).attribute(x, target=1, feature_mask=mask)
    )
    total = ShapleyValues(lambda t: model(t)[:, 0].sum()).attribute(x, feature_mask=mask)
    assert total.shape == (1, 6)
    torch.testing.assert_close(total[0], multi[:, 0].sum(0), atol=1e-5, rtol=1e-5)


def test_cross_tensor_groups() -> None:
    model = MultiInputModel()
    xs = (torch.randn(2, 4), torch.randn(2, 3))
    masks = (torch.tensor([[0, 0, 1, 1]]), torch.tensor([[1, 2, 2]]))
    a, b = ShapleyValues(model).attribute(xs, target=0, feature_mask=masks)
    torch.testing.assert_close(a[:, 2], b[:, 0])
    with torch.no_grad():
        gap = model(*xs)[:, 0] - model(torch.zeros(2, 4), torch.zeros(2, 3))[:, 0]
    torch.testing.assert_close(a[:, [0, 2]].sum(1) + b[:, 1], gap, atol=1e-5, rtol=1e-5)


def test_futures_give_the_same_values() -> None:
    model = ReLUMLP()

    def remote(t: Tensor) -> torch.futures.Future[Tensor]:
        fut: torch.futures.Future[Tensor] = torch.futures.Future()
        fut.set_result(model(t))
        return fut

    x = torch.randn(2, 6)
    mask = torch.tensor([[0, 1, 1, 2, 2, 3]])
    got = ShapleyValues(remote).attribute_future(x, target=0, feature_mask=mask).wait()
    torch.testing.assert_close(got, ShapleyValues(model).attribute(x, target=0, feature_mask=mask))
    torch.manual_seed(3)
    fut = ShapleyValueSampling(remote).attribute_future(x, target=0, n_samples=3).wait()
    torch.manual_seed(3)
    torch.testing.assert_close(fut, ShapleyValueSampling(model).attribute(x, target=0, n_samples=3))


def test_many_features_warn_and_too_many_are_refused() -> None:
    model = CountingModel(nn.Linear(41, 1))
    with pytest.raises(ValueError, match="2\\^41 coalitions of 41 features"):
        ShapleyValues(model).attribute(torch.randn(1, 41))
    assert model.calls == 0
    with pytest.warns(UserWarning, match="2\\^16 - 1 coalitions"):
        ShapleyValues(nn.Linear(16, 1)).attribute(torch.randn(1, 16))


@pytest.mark.parametrize(
    ("n_samples", "error"), [(0, ValueError), (-3, ValueError), (2.0, TypeError)]
)
def test_bad_n_samples_fail_before_any_model_call(n_samples: Any, error: type) -> None:
    model = CountingModel(ReLUMLP())
    with pytest.raises(error, match="n_samples must be"):
        ShapleyValueSampling(model).attribute(torch.randn(2, 6), target=0, n_samples=n_samples)
    assert model.calls == 0
