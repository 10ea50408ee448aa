"""Batched weighted regression solvers (perturbation/regression.py)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from perspicio.perturbation import regression as su

sklearn_lm = pytest.importorskip("sklearn.linear_model")


def _data(
    rows: int = 3, samples: int = 60, feats: int = 5, binary: bool = False, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if binary:
        x = (torch.rand(rows, samples, feats, generator=g) < 0.5).double()
    else:
        x = torch.randn(rows, samples, feats, generator=g, dtype=torch.float64)
    coef = torch.randn(rows, feats, 1, generator=g, dtype=torch.float64)
    y = (x @ coef).squeeze(2) + 0.3 + 0.1 * torch.randn(rows, samples, generator=g).double()
    w = torch.rand(rows, samples, generator=g, dtype=torch.float64) + 0.2
    return x, y, w


def _sk(estimator: object, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> tuple:
    estimator.fit(x.numpy(), y.numpy(), sample_weight=w.numpy())  # type: ignore[attr-defined]
    return estimator.coef_, estimator.intercept_  # type: ignore[attr-defined]


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_least_squares_matches_sklearn(fit_intercept: bool) -> None:
    x, y, w = _data()
    coef, intercept = su.fit_least_squares(x, y, w, fit_intercept)
    for r in range(len(x)):
        ref = _sk(sklearn_lm.LinearRegression(fit_intercept=fit_intercept), x[r], y[r], w[r])
        np.testing.assert_allclose(coef[r].numpy(), ref[0], atol=1e-7)
        np.testing.assert_allclose(float(intercept[r]), ref[1], atol=1e-7)


def test_least_squares_is_minimum_norm_when_rank_deficient() -> None:
    x, y, w = _data(samples=4, feats=9, binary=True)  # fewer samples than features
    coef, intercept = su.fit_least_squares(x, y, w)
    for r in range(len(x)):
        ref = _sk(sklearn_lm.LinearRegression(), x[r], y[r], w[r])
        np.testing.assert_allclose(coef[r].numpy(), ref[0], atol=1e-5)
        np.testing.assert_allclose(float(intercept[r]), ref[1], atol=1e-5)


@pytest.mark.parametrize("alpha", [0.1, 3.0])
def test_ridge_matches_sklearn(alpha: float) -> None:
    x, y, w = _data(seed=1)
    coef, intercept = su.fit_ridge(x, y, w, alpha=alpha)
    for r in range(len(x)):
        ref = _sk(sklearn_lm.Ridge(alpha=alpha), x[r], y[r], w[r])
        np.testing.assert_allclose(coef[r].numpy(), ref[0], atol=1e-8)
        np.testing.assert_allclose(float(intercept[r]), ref[1], atol=1e-8)


@pytest.mark.parametrize(("alpha", "binary"), [(0.01, True), (0.05, False), (0.5, False)])
def test_lasso_matches_sklearn(alpha: float, binary: bool) -> None:
    x, y, w = _data(samples=80, feats=8, binary=binary, seed=2)
    coef, intercept = su.fit_lasso(x, y, w, alpha=alpha, tol=1e-12, max_iter=50_000)
    for r in range(len(x)):
        est = sklearn_lm.Lasso(alpha=alpha, tol=1e-12, max_iter=100_000)
        ref = _sk(est, x[r], y[r], w[r])
        np.testing.assert_allclose(coef[r].numpy(), ref[0], atol=1e-7)
        np.testing.assert_allclose(float(intercept[r]), ref[1], atol=1e-7)
    assert (coef == 0).any() or alpha < 0.1  # the L1 penalty makes coefficients exactly zero


def test_lasso_default_tolerance_close_to_sklearn_defaults() -> None:
    x, y, w = _data(samples=200, feats=10, binary=True, seed=3)
    xf, yf, wf = x.float(), y.float(), w.float()  # as LIME gives them (single precision)
    coef, _ = su.fit_lasso(xf, yf, wf, alpha=0.01)
    assert coef.dtype == torch.float32
    for r in range(len(x)):
        ref = _sk(sklearn_lm.Lasso(alpha=0.01), xf[r], yf[r], wf[r])
        np.testing.assert_allclose(coef[r].numpy(), ref[0], atol=2e-3)


def test_lasso_large_alpha_gives_zero_coefficients() -> None:
    x, y, w = _data(seed=4)
    coef, intercept = su.fit_lasso(x, y, w, alpha=1e3)
    assert torch.equal(coef, torch.zeros_like(coef))
    torch.testing.assert_close(intercept, (w * y).sum(1) / w.sum(1))


def test_lasso_stops_at_max_iter() -> None:
    x, y, w = _data(seed=5)
    loose, _ = su.fit_lasso(x, y, w, alpha=0.01, max_iter=1)
    tight, _ = su.fit_lasso(x, y, w, alpha=0.01, tol=1e-12)
    assert not torch.allclose(loose, tight)


def test_batched_rows_are_independent() -> None:
    x, y, w = _data(rows=4, seed=6)
    tight_lasso = functools.partial(su.fit_lasso, tol=1e-12, max_iter=20_000)
    for solve in (su.fit_least_squares, su.fit_ridge, tight_lasso):
        coef, intercept = solve(x, y, w)
        for r in range(4):
            one = solve(x[r : r + 1], y[r : r + 1], w[r : r + 1])
            torch.testing.assert_close(coef[r : r + 1], one[0], atol=1e-6, rtol=1e-6)
            torch.testing.assert_close(intercept[r : r + 1], one[1], atol=1e-6, rtol=1e-6)


def test_unit_weights_equal_no_weights() -> None:
    x, y, _ = _data(seed=7)
    for solve in (su.fit_least_squares, su.fit_ridge, su.fit_lasso):
        torch.testing.assert_close(solve(x, y, None), solve(x, y, torch.ones_like(y)))


def test_top_eigenvalue_bound_is_an_upper_bound() -> None:
    g = torch.Generator().manual_seed(8)
    a = torch.randn(6, 40, 30, generator=g, dtype=torch.float64)
    q = a.transpose(1, 2) @ a
    exact = torch.linalg.eigvalsh(q)[:, -1].view(-1, 1, 1)
    bound = su.top_eigenvalue_bound(q)
    assert (bound >= exact).all()
    assert (bound <= exact * 30 ** (1 / 16) * 1.01).all()


def _brute_shapley(game: dict[tuple[int, ...], float], m: int) -> torch.Tensor:
    from itertools import combinations
    from math import factorial

    phi = torch.zeros(m, dtype=torch.float64)
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for k in range(m):
            for s in combinations(others, k):
                weight = factorial(k) * factorial(m - k - 1) / factorial(m)
                phi[i] += weight * (game[tuple(sorted((*s, i)))] - game[s])
    return phi


def test_shapley_fit_on_all_coalitions_with_kernel_weights_is_exact() -> None:
    from itertools import combinations
    from math import comb

    m = 4
    g = torch.Generator().manual_seed(9)
    values = torch.randn(2**m, generator=g, dtype=torch.float64)
    coalitions = [s for k in range(m + 1) for s in combinations(range(m), k)]
    game = {s: float(values[i]) for i, s in enumerate(coalitions)}
    x = torch.zeros(1, len(coalitions), m, dtype=torch.float64)
    for i, s in enumerate(coalitions):
        x[0, i, list(s)] = 1
    y = torch.tensor([[game[s] for s in coalitions]], dtype=torch.float64)
    kernel = [(m - 1) / (comb(m, len(s)) * len(s) * (m - len(s))) if 0 < len(s) < m else 1.0
              for s in coalitions]  # fmt: skip
    coef, intercept = su.fit_shapley(x, y, torch.tensor([kernel], dtype=torch.float64))
    torch.testing.assert_close(coef[0], _brute_shapley(game, m))
    assert float(intercept[0]) == game[()]


@pytest.mark.parametrize("samples", [3, 12, 200])
def test_shapley_fit_satisfies_efficiency_exactly(samples: int) -> None:
    g = torch.Generator().manual_seed(10)
    m = 7
    x = torch.rand(5, samples, m, generator=g) < 0.4
    x[:, 0], x[:, 1] = True, False
    y = torch.randn(5, samples, generator=g)
    coef, intercept = su.fit_shapley(x, y, torch.rand(5, samples, generator=g))
    size = x.sum(2)  # repeated end points are averaged
    f_full = (y * (size == m)).sum(1) / (size == m).sum(1)
    f_empty = (y * (size == 0)).sum(1) / (size == 0).sum(1)
    torch.testing.assert_close(coef.sum(1), f_full - f_empty, atol=1e-6, rtol=0)
    torch.testing.assert_close(intercept, f_empty)


def test_shapley_fit_single_feature() -> None:
    x = torch.tensor([[[1.0], [0.0], [1.0]]])
    coef, intercept = su.fit_shapley(x, torch.tensor([[3.0, 1.0, 3.0]]))
    torch.testing.assert_close(coef, torch.tensor([[2.0]]))
    torch.testing.assert_close(intercept, torch.tensor([1.0]))


def test_shapley_exact_single_precision_gram_equals_double() -> None:
    g = torch.Generator().manual_seed(11)
    x = torch.rand(3, 50, 6, generator=g) < 0.5
    x[:, 0], x[:, 1] = True, False
    y = torch.randn(3, 50, generator=g, dtype=torch.float64)
    fast = su.fit_shapley(x, y)  # bool coalitions, unit weights: single-precision Gram
    slow = su.fit_shapley(x.double(), y)
    torch.testing.assert_close(fast, slow)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ((torch.zeros(5, 3), torch.zeros(5), None), "inputs \\(R, S, M\\)"),
        ((torch.zeros(1, 5, 3), torch.zeros(1, 4), None), "inputs \\(R, S, M\\)"),
        ((torch.zeros(1, 5, 3), torch.zeros(1, 5), torch.ones(1, 4)), "weights must have"),
        ((torch.zeros(2, 5, 3), torch.zeros(3, 5), None), "inputs \\(R, S, M\\)"),
        ((torch.zeros(1, 5, 3), torch.zeros(3, 5), torch.ones(2, 5)), "weights must have"),
    ],
)
def test_solver_shape_errors(bad: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        su.fit_least_squares(*bad)


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_wide_ridge_matches_sklearn(alpha: float) -> None:
    x, y, w = _data(samples=12, feats=40, seed=20)  # more features than samples
    coef, intercept = su.fit_ridge(x, y, w, alpha=alpha)
    for r in range(len(x)):
        est = sklearn_lm.Ridge(alpha=alpha) if alpha else sklearn_lm.LinearRegression()
        ref = _sk(est, x[r], y[r], w[r])
        np.testing.assert_allclose(coef[r].numpy(), ref[0], atol=1e-6)
        np.testing.assert_allclose(float(intercept[r]), ref[1], atol=1e-6)


def _lasso_objective(
    x: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor,
    coef: torch.Tensor,
    intercept: float,
    alpha: float,
) -> float:
    loss = (w * (y - x @ coef - intercept) ** 2).sum() / (2 * w.sum())
    return float(loss + alpha * coef.abs().sum())


def test_wide_lasso_matches_sklearn() -> None:
    x, y, w = _data(samples=30, feats=60, binary=True, seed=21)
    coef, intercept = su.fit_lasso(x, y, w, alpha=0.05, tol=1e-12, max_iter=100_000)
    for r in range(len(x)):
        ref = _sk(sklearn_lm.Lasso(alpha=0.05, tol=1e-12, max_iter=100_000), x[r], y[r], w[r])
        ours = _lasso_objective(x[r], y[r], w[r], coef[r], float(intercept[r]), 0.05)
        theirs = _lasso_objective(x[r], y[r], w[r], torch.as_tensor(ref[0]), float(ref[1]), 0.05)
        assert ours == pytest.approx(theirs, rel=1e-6)  # the optimum may not be unique


def test_wide_shapley_is_the_minimum_norm_constrained_fit() -> None:
    g = torch.Generator().manual_seed(22)
    m, s = 30, 10
    x = torch.rand(2, s, m, generator=g) < 0.5
    x[:, 0], x[:, 1] = True, False
    y = torch.randn(2, s, generator=g, dtype=torch.float64)
    w = torch.rand(2, s, generator=g, dtype=torch.float64)
    coef, intercept = su.fit_shapley(x, y, w)
    for r in range(2):
        xd = x[r, 2:].double()
        even = (y[r, 0] - y[r, 1]) / m
        resid = y[r, 2:] - y[r, 1] - xd.sum(1) * even
        proj = torch.eye(m, dtype=torch.float64) - 1.0 / m
        a = w[r, 2:].sqrt().unsqueeze(1) * (xd @ proj)
        theta = torch.linalg.pinv(a) @ (w[r, 2:].sqrt() * resid)
        torch.testing.assert_close(coef[r], theta + even, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(coef.sum(1), y[:, 0] - y[:, 1])
    torch.testing.assert_close(intercept, y[:, 1])


@pytest.mark.parametrize("shared_weights", [True, False])
@pytest.mark.parametrize("samples", [60, 6])  # the Gram and the sample-space forms
def test_shared_design_equals_the_expanded_one(shared_weights: bool, samples: int) -> None:
    x, y, w = _data(rows=4, samples=samples, feats=8, binary=True, seed=23)
    x1, w1 = x[:1], (w[:1] if shared_weights else w)
    xs, ws = x1.expand(4, -1, -1), w1.expand(4, -1)
    tight_lasso = functools.partial(su.fit_lasso, tol=1e-12, max_iter=20_000)
    for solve in (su.fit_least_squares, su.fit_ridge, tight_lasso):
        shared, expanded = solve(x1, y, w1), solve(xs, y, ws)
        torch.testing.assert_close(shared, expanded, atol=1e-7, rtol=1e-7)
    z = x1.bool().clone()
    z[:, 0], z[:, 1] = True, False
    shared = su.fit_shapley(z, y, w1)  # (few samples: a near-singular minimum-norm solve)
    expanded = su.fit_shapley(z.expand(4, -1, -1), y, ws)
    torch.testing.assert_close(shared, expanded, atol=1e-5, rtol=1e-5)
    for solve in (su.fit_least_squares, su.fit_ridge):  # the same fits as row by row
        coef, _ = solve(x1, y, w1)
        for r in range(4):
            one, _ = solve(x1, y[r : r + 1], w1[min(r, len(w1) - 1) :][:1])
            torch.testing.assert_close(coef[r : r + 1], one, atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize("shared", [True, False])
def test_lasso_rows_whose_solution_is_zero_are_screened_out(shared: bool) -> None:
    x, y, w = _data(rows=5, samples=50, feats=6, binary=True, seed=24)
    if shared:
        x = x[:1]
    y[1] = 0.3 + 0.001 * y[1]  # nearly constant: zero is optimal for alpha = 0.1
    y[3] = 2.0
    coef, intercept = su.fit_lasso(x, y, w, alpha=0.1, tol=1e-12, max_iter=20_000)
    assert float(coef[1].abs().max()) == 0 and float(coef[3].abs().max()) == 0
    assert float(coef[0].abs().max()) > 0
    for r in range(5):
        one = su.fit_lasso(x[min(r, len(x) - 1)][None], y[r : r + 1], w[r : r + 1], alpha=0.1,
                           tol=1e-12, max_iter=20_000)  # fmt: skip
        torch.testing.assert_close(coef[r : r + 1], one[0], atol=1e-7, rtol=1e-7)
        torch.testing.assert_close(intercept[r : r + 1], one[1], atol=1e-7, rtol=1e-7)
