"""Deletion/insertion curves and faithfulness correlation: closed forms on linear models,
feature groups, batching and bad input."""

from __future__ import annotations

import doctest
import importlib
from typing import Any

import pytest
import torch
from torch import nn

from perspicio.attr import IntegratedGradients
from perspicio.metrics import deletion_curve, faithfulness_correlation, insertion_curve
from perspicio.metrics.faithfulness import pearson, rank_groups
from perspicio.testing import ConvNet, MultiInputModel, ReLUMLP
from tests.helpers import CountingModel


def linear(weights: list[float]) -> nn.Linear:
    model = nn.Linear(len(weights), 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([weights]))
        model.bias.zero_()
    return model


W = [4.0, -1.0, 2.0, 0.5]
X = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 1.0, -1.0, 0.0]])
CONTRIB = torch.tensor(W) * X  # exact contributions: [[4, -1, 2, .5], [8, -1, -2, 0]]


def test_docstring_examples() -> None:
    assert doctest.testmod(importlib.import_module("perspicio.metrics.faithfulness")).failed == 0


def test_deletion_morf_closed_form() -> None:
    curve = deletion_curve(linear(W), X, CONTRIB)
    torch.testing.assert_close(curve.fractions, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    # example 0 removes 4, 2, .5, -1 in turn; example 1 removes 8, 0, -1, -2 (ties by index)
    expected = torch.tensor([[5.5, 1.5, -0.5, -1.0, 0.0], [5.0, -3.0, -3.0, -2.0, 0.0]])
    torch.testing.assert_close(curve.scores, expected)
    torch.testing.assert_close(curve.auc, torch.trapezoid(expected, dx=0.25, dim=1))


def test_lerf_removes_the_least_relevant_first() -> None:
    curve = deletion_curve(linear(W), X, CONTRIB, order="LeRF")
    torch.testing.assert_close(curve.scores[0], torch.tensor([5.5, 6.5, 6.0, 4.0, 0.0]))
    assert (curve.auc > deletion_curve(linear(W), X, CONTRIB).auc).all()


def test_insertion_is_the_complement_of_deletion() -> None:
    # inserting the top-k features leaves the same input as deleting the bottom n-k
    model = ReLUMLP(in_features=4)
    attributions = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    ins = insertion_curve(model, X, attributions, target=1, baselines=0.3)
    dele = deletion_curve(model, X, attributions, target=1, baselines=0.3, order="lerf")
    torch.testing.assert_close(ins.scores, dele.scores.flip(1))
    torch.testing.assert_close(ins.auc, dele.auc)


def test_baselines_are_the_removed_value() -> None:
    curve = deletion_curve(
        linear(W), X[:1], CONTRIB[:1], baselines=torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    )
    torch.testing.assert_close(curve.scores[0, -1], torch.tensor(4.0 - 1.0 + 0.5))


def test_n_steps_rounds_the_number_of_features() -> None:
    model = ReLUMLP()
    x = torch.randn(3, 6)
    full = deletion_curve(model, x, x, target=0)
    coarse = deletion_curve(model, x, x, target=0, n_steps=4)  # 0, 1.5, 3, 4.5, 6 rounded half up
    torch.testing.assert_close(coarse.fractions, torch.tensor([0, 2, 3, 5, 6]) / 6.0)
    torch.testing.assert_close(coarse.scores, full.scores[:, [0, 2, 3, 5, 6]])


def test_feature_groups_are_removed_together() -> None:
    mask = torch.tensor([[0, 0, 1, 1]])  # two groups with summed relevance 3 and 2.5
    curve = deletion_curve(linear(W), X[:1], CONTRIB[:1], feature_mask=mask)
    torch.testing.assert_close(curve.fractions, torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(curve.scores, torch.tensor([[5.5, 2.5, 0.0]]))


def test_groups_may_span_inputs() -> None:
    model = MultiInputModel()
    inputs = (torch.randn(2, 4), torch.randn(2, 3))
    masks = (torch.tensor([[0, 1, 2, 3]]), torch.tensor([[0, 1, 2]]))
    attrs = (torch.randn(2, 4), torch.randn(2, 3))
    curve = deletion_curve(model, inputs, attrs, target=0, feature_mask=masks)
    assert curve.scores.shape == (2, 5)
    # removing everything leaves the baselines, whatever the grouping
    with torch.no_grad():
        empty = model(torch.zeros(2, 4), torch.zeros(2, 3))[:, 0]
    torch.testing.assert_close(curve.scores[:, -1], empty)


def test_per_example_masks() -> None:
    masks = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 0]])
    curve = deletion_curve(linear(W), X, CONTRIB, feature_mask=masks)
    # example 1: group 0 = {8, 0}, group 1 = {-1, -2}: removing group 0 leaves -3
    torch.testing.assert_close(curve.scores[1], torch.tensor([5.0, -3.0, 0.0]))


@pytest.mark.parametrize("fn", [deletion_curve, insertion_curve])
@pytest.mark.parametrize("mepb", [1, 2, 5, 64])
def test_chunk_invariance(fn: Any, mepb: int) -> None:
    model = ConvNet()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    attrs = IntegratedGradients(model).attribute(x, target=3, n_steps=5)
    kw: dict[str, Any] = {
        "target": 3,
        "n_steps": 8,
        "feature_mask": torch.arange(64).reshape(1, 1, 8, 8) // 4,
    }
    torch.testing.assert_close(
        fn(model, x, attrs, max_examples_per_batch=mepb, **kw).scores,
        fn(model, x, attrs, **kw).scores,
    )


def test_ties_keep_the_feature_order() -> None:
    ranks = rank_groups(torch.tensor([[1.0, 3.0, 1.0, 3.0]]), most_relevant_first=True)
    assert ranks.tolist() == [[2, 0, 3, 1]]
    ranks = rank_groups(torch.tensor([[1.0, 3.0, 1.0, 3.0]]), most_relevant_first=False)
    assert ranks.tolist() == [[0, 2, 1, 3]]


def test_faithfulness_correlation_of_exact_contributions() -> None:
    model = linear([1.0, -2.0, 3.0, 0.5, -1.5, 2.5])
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(2))
    exact = x * model.weight.detach()
    torch.manual_seed(0)
    torch.testing.assert_close(
        faithfulness_correlation(model, x, exact, subset_size=2), torch.ones(3)
    )
    torch.manual_seed(0)
    torch.testing.assert_close(
        faithfulness_correlation(model, x, -exact, subset_size=0.5), -torch.ones(3)
    )
    torch.manual_seed(0)
    assert (faithfulness_correlation(model, x, torch.ones(3, 6), subset_size=3) == 0).all()


def test_faithfulness_correlation_matches_a_reference() -> None:
    model = ReLUMLP()
    x = torch.randn(2, 6, generator=torch.Generator().manual_seed(3))
    attrs = torch.randn(2, 6, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(5)
    result = faithfulness_correlation(
        model, x, attrs, target=1, n_perturb_samples=12, subset_size=2
    )
    torch.manual_seed(5)
    keys = torch.rand(12, 2, 6)  # the subsets are the two largest keys per sample
    chosen = torch.zeros(12, 2, 6, dtype=torch.bool).scatter_(2, keys.topk(2, dim=2).indices, True)
    with torch.no_grad():
        f_x = model(x)[:, 1]
        drops = torch.stack([f_x - model(torch.where(c, 0.0, x))[:, 1] for c in chosen])
    sums = (attrs.unsqueeze(0) * chosen).sum(2)
    for i in range(2):
        expected = torch.corrcoef(torch.stack([sums[:, i], drops[:, i]]))[0, 1]
        torch.testing.assert_close(result[i], expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("mepb", [1, 4, 100])
def test_faithfulness_correlation_chunk_invariance(mepb: int) -> None:
    model = ReLUMLP()
    x = torch.randn(2, 6)
    runs = []
    for knob in (None, mepb):
        torch.manual_seed(7)
        runs.append(
            faithfulness_correlation(
                model, x, x, target=0, n_perturb_samples=9, max_examples_per_batch=knob
            )
        )
    torch.testing.assert_close(runs[0], runs[1])


def test_pearson_of_constant_rows_is_zero() -> None:
    a = torch.tensor([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])
    b = torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])
    torch.testing.assert_close(pearson(a, b), torch.tensor([0.0, 1.0]))


BAD = [
    ({"attributions": torch.ones(2, 3)}, ValueError, r"attributions\[0\] has shape \(2, 3\)"),
    ({"order": "random"}, ValueError, "order must be 'morf'"),
    ({"n_steps": 0}, ValueError, "n_steps must be at least 1"),
    ({"feature_mask": torch.full((1, 4), 0.5)}, ValueError, "must hold integer feature ids"),
    (
        {"feature_mask": torch.zeros(1, 3, dtype=torch.long)},
        ValueError,
        r"has shape \(1, 3\), which does not broadcast",
    ),
    ({"baselines": torch.ones(3, 4)}, ValueError, r"baselines\[0\] has shape \(3, 4\)"),
    ({"max_examples_per_batch": 0}, ValueError, "max_examples_per_batch must be at least 1"),
]


@pytest.mark.parametrize("fn", [deletion_curve, insertion_curve])
@pytest.mark.parametrize(("override", "error", "message"), BAD)
def test_bad_curve_input(fn: Any, override: dict[str, Any], error: type, message: str) -> None:
    model = CountingModel(linear(W))
    kwargs: dict[str, Any] = {"attributions": CONTRIB, **override}
    attributions = kwargs.pop("attributions")
    with pytest.raises(error, match=message):
        fn(model, X, attributions, **kwargs)
    assert model.calls == 0


@pytest.mark.parametrize(
    ("subset_size", "error", "message"),
    [
        (0, ValueError, "subset_size must be between 1 and the 4 features, got 0"),
        (5, ValueError, "subset_size must be between 1 and the 4 features, got 5"),
        (1.5, ValueError, r"a float subset_size is a fraction in \(0, 1\]"),
        ("2", TypeError, "subset_size must be an int or a float"),
    ],
)
def test_bad_subset_size(subset_size: Any, error: type, message: str) -> None:
    model = CountingModel(linear(W))
    with pytest.raises(error, match=message):
        faithfulness_correlation(model, X, CONTRIB, subset_size=subset_size)
    assert model.calls == 0
