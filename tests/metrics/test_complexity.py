"""Sparseness (Gini) and complexity (entropy): bounds, references and invariances."""

from __future__ import annotations

import doctest
import importlib
import math

import pytest
import torch

from perspicio.metrics import complexity, sparseness


def test_docstring_examples() -> None:
    assert doctest.testmod(importlib.import_module("perspicio.metrics.complexity")).failed == 0


@pytest.mark.parametrize("d", [2, 5, 64])
def test_gini_bounds(d: int) -> None:
    one_hot = torch.zeros(2, d)
    one_hot[0, d // 2] = -3.0  # the sign does not matter
    one_hot[1, 0] = 0.1
    torch.testing.assert_close(sparseness(one_hot), torch.ones(2))
    torch.testing.assert_close(sparseness(torch.full((1, d), 2.5)), torch.zeros(1))
    torch.testing.assert_close(sparseness(torch.zeros(1, d)), torch.zeros(1))


def gini_reference(values: list[float]) -> float:
    """Mean absolute difference over twice the mean, scaled by d / (d - 1)."""
    a = [abs(v) for v in values]
    d = len(a)
    mad = sum(abs(x - y) for x in a for y in a) / (d * d)
    return mad / (2 * sum(a) / d) * d / (d - 1)


def test_gini_matches_the_pairwise_definition() -> None:
    x = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(0))
    expected = torch.tensor([gini_reference(row.reshape(-1).tolist()) for row in x])
    torch.testing.assert_close(sparseness(x), expected, atol=1e-6, rtol=1e-5)


def test_tuples_are_concatenated_and_scale_and_order_do_not_matter() -> None:
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    parts = (x[:, :3], x[:, 3:].reshape(3, 5, 1))
    for fn in (sparseness, complexity):
        torch.testing.assert_close(fn(parts), fn(x))
        torch.testing.assert_close(fn(x * 10), fn(x))
        torch.testing.assert_close(fn(x[:, torch.randperm(8)]), fn(x))


def test_entropy_bounds() -> None:
    d = 16
    one_hot = torch.zeros(1, d)
    one_hot[0, 3] = 5.0
    assert complexity(one_hot).item() == 0.0
    torch.testing.assert_close(complexity(torch.ones(1, d)), torch.tensor([math.log(d)]))
    torch.testing.assert_close(complexity(torch.zeros(1, d)), torch.tensor([math.log(d)]))


def test_entropy_reference() -> None:
    x = torch.randn(2, 6, generator=torch.Generator().manual_seed(2))
    for row, got in zip(x, complexity(x)):
        p = [abs(v) / float(row.abs().sum()) for v in row.tolist()]
        assert math.isclose(float(got), -sum(q * math.log(q) for q in p), rel_tol=1e-5)


def test_integer_attributions_and_one_feature() -> None:
    assert sparseness(torch.tensor([[0, 0, 7]])).dtype.is_floating_point
    assert sparseness(torch.ones(3, 1)).tolist() == [0.0, 0.0, 0.0]
    assert complexity(torch.ones(2, 1)).tolist() == [0.0, 0.0]


def test_bad_input() -> None:
    with pytest.raises(TypeError, match=r"attributions\[0\] must be a torch.Tensor, got float"):
        sparseness([1.0, 2.0])
    with pytest.raises(ValueError, match="same batch size"):
        complexity((torch.ones(2, 3), torch.ones(3, 3)))
