"""The t-test against scipy, and the plot."""

from __future__ import annotations

import math

import pytest
import torch

from perspicio import ArgumentError
from perspicio.concept import Concept
from perspicio.concept.stats import (
    TCAVSignificance,
    _betainc,
    plot_tcav_scores,
    significance_test,
    ttest_ind,
)


@pytest.mark.parametrize(
    ("a", "b", "x"),
    [(0.5, 0.5, 0.3), (9, 0.5, 0.99), (3, 0.5, 0.2), (50, 0.5, 0.999), (2, 3, 0.6), (0.7, 4, 0.01)],
)
def test_incomplete_beta(a: float, b: float, x: float) -> None:
    special = pytest.importorskip("scipy.special")
    assert math.isclose(_betainc(a, b, x), float(special.betainc(a, b, x)), rel_tol=1e-10)


@pytest.mark.parametrize(("n", "m", "shift"), [(10, 10, 0.5), (5, 12, 0.1), (10, 10, 3.0)])
def test_ttest_matches_scipy(n: int, m: int, shift: float) -> None:
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(n + m)
    a, b = torch.randn(n, generator=g, dtype=torch.double), torch.randn(m, generator=g) + shift
    t, p = ttest_ind(a, b)
    ref = stats.ttest_ind(a.numpy(), b.double().numpy())
    assert math.isclose(t, ref.statistic, rel_tol=1e-9)
    assert math.isclose(p, ref.pvalue, rel_tol=1e-8, abs_tol=1e-300)


def test_ttest_without_spread() -> None:
    assert ttest_ind(torch.ones(5), torch.ones(5)) == (0.0, 1.0)
    assert ttest_ind(torch.ones(5), torch.zeros(5)) == (math.inf, 0.0)
    with pytest.raises(ArgumentError, match="at least two scores"):
        ttest_ind(torch.ones(1), torch.ones(5))


def test_significance_bad_input() -> None:
    c = Concept(0, "c", None)
    with pytest.raises(ArgumentError, match="score_type"):
        significance_test(None, None, c, [], score_type="mean")
    with pytest.raises(ArgumentError, match="at least two"):
        significance_test(None, None, c, [Concept(1, "r", None)])
    with pytest.raises(ArgumentError, match="alpha"):
        significance_test(None, None, c, [], alpha=2)


def test_plot() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    results = {
        layer: TCAVSignificance(
            Concept(0, "stripes", None),
            layer,
            torch.tensor([1.0, 0.9]),
            torch.tensor([0.5, 0.4]),
            5.0,
            p,
            0.05,
        )
        for layer, p in (("conv1", 0.001), ("conv2", 0.5))
    }
    fig, ax = plot_tcav_scores(results)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["conv1", "conv2"]
    assert [t.get_text() for t in ax.texts] == ["*"]  # only conv1 is significant
    assert len(ax.patches) == 4
    import matplotlib.pyplot as plt

    plt.close(fig)
