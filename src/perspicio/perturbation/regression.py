"""Batched weighted linear regression in torch: the solvers behind LIME and Kernel SHAP.

Each solver fits ``R`` independent models at once from inputs ``x`` ``(R, S, M)``, targets
``y`` ``(R, S)`` and sample weights ``w`` ``(R, S)``, on the inputs' device. Inputs and weights
may instead have a first dimension of 1, shared by every row: where both are shared, one
Gram matrix and one factorisation serve all ``R`` right-hand sides. Least squares
(minimum norm), ridge and the constrained least squares of Kernel SHAP in closed form
(Cholesky), the lasso by FISTA (Beck & Teboulle, 2009). Where there are fewer samples than
features the closed forms work in sample space (an ``S × S`` system) and the lasso
iterates on the data instead of the ``M × M`` Gram matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from perspicio._core.validate import ArgumentError

_SOLVE = torch.float64  # the systems are small: double precision costs little
_JITTER = 1e-10  # relative diagonal jitter: least squares tends to the minimum-norm solution


class Moments(NamedTuple):
    """Weighted moments of a batch of regression problems (``B`` is 1 for shared inputs and
    weights, else R)."""

    gram: Tensor  # (B, M, M): Σ_s w_s x̃_s x̃_sᵀ with x̃ centred when there is an intercept
    cross: Tensor  # (R, M): Σ_s w_s x̃_s ỹ_s
    yy: Tensor  # (R,): Σ_s w_s ỹ_s²
    x_mean: Tensor  # (B, M): weighted means (zeros without intercept)
    y_mean: Tensor  # (R,)
    w_sum: Tensor  # (B,)


def _check_batch(x: Tensor, y: Tensor, w: Tensor | None) -> Tensor:
    """The weights in double precision, ``(1 or R, S)``, after checking the shapes."""
    rows, samples = y.shape if y.dim() == 2 else (-1, -1)
    if x.dim() != 3 or x.shape[1] != samples or x.shape[0] not in (1, rows):
        raise ArgumentError(
            f"a batch of regressions needs inputs (R, S, M) (or (1, S, M), shared) and targets "
            f"(R, S), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if w is None:
        return torch.ones(x.shape[:2], dtype=_SOLVE, device=y.device)
    if w.dim() != 2 or w.shape[1] != samples or w.shape[0] not in (1, rows):
        raise ArgumentError(
            f"weights must have the targets' shape {tuple(y.shape)} (or (1, S), shared), got "
            f"{tuple(w.shape)}"
        )
    return w.to(_SOLVE)


def _wide(x: Tensor) -> bool:
    """More features than samples: work in sample space."""
    return x.dim() == 3 and x.shape[2] > x.shape[1]


def moments(
    x: Tensor,
    y: Tensor,
    w: Tensor | None = None,
    fit_intercept: bool = True,
    dtype: torch.dtype = _SOLVE,
) -> Moments:
    """Weighted Gram matrix and cross moments of ``R`` problems, centred for an intercept.

    Computed and returned in ``dtype`` (single precision is enough where no minimum-norm
    solution of a rank-deficient system is needed).
    """
    first = first_moments(x, y, w, fit_intercept, dtype)
    wd = _check_batch(x, y, w).to(dtype)
    return first._replace(gram=centred_gram(x, wd, first.x_mean, first.w_sum, fit_intercept))


def first_moments(
    x: Tensor,
    y: Tensor,
    w: Tensor | None = None,
    fit_intercept: bool = True,
    dtype: torch.dtype = _SOLVE,
) -> Moments:
    """:func:`moments` without the Gram matrix (its field is an empty tensor): cheap, and
    enough to tell whether a lasso's solution is zero."""
    wd = _check_batch(x, y, w).to(dtype)
    xd, yd = x.to(dtype), y.to(dtype)
    w_sum = wd.sum(1)
    x_mean = _weighted_sum(xd, wd) / w_sum.unsqueeze(1)
    y_mean = (wd * yd).sum(1) / w_sum
    if fit_intercept:
        yd = yd - y_mean.unsqueeze(1)
    else:
        x_mean, y_mean = torch.zeros_like(x_mean), torch.zeros_like(y_mean)
    wy = wd * yd
    # Σ w x (y − ȳ) equals Σ w (x − x̄)(y − ȳ); centring first keeps non-binary data with large
    # means from cancelling digits
    centred = xd if x.dtype == torch.bool or not fit_intercept else xd - x_mean.unsqueeze(1)
    cross = _weighted_sum(centred, wy)
    return Moments(xd.new_empty(0), cross, (wy * yd).sum(1), x_mean, y_mean, w_sum)


def _weighted_sum(x: Tensor, w: Tensor) -> Tensor:
    """``Σ_s w_rs x_s`` ``(R, M)`` for ``x`` ``(1 or R, S, M)`` and ``w`` ``(R, S)``."""
    if x.shape[0] == 1:
        return w @ x[0]
    return (w.unsqueeze(1) @ x).squeeze(1)  # row-vector products: a fast path on CPU


def centred_gram(
    x: Tensor, w: Tensor, x_mean: Tensor, w_sum: Tensor, fit_intercept: bool
) -> Tensor:
    """``Σ_s w_s (x_s − x̄)(x_s − x̄)ᵀ`` ``(B, M, M)`` in ``w``'s dtype (no centring without
    intercept).

    0/1 inputs take ``Σ w x xᵀ − (Σ w) x̄ x̄ᵀ`` (entries are bounded by ``Σ w``, so the
    subtraction loses little); others are centred first. Inputs shared by all rows
    (``x`` ``(1, S, M)``) take one matrix product for every row's matrix:
    ``[w_1 x, …, w_R x]ᵀ x``.
    """
    xd = x.to(w.dtype)
    if x.dtype != torch.bool:
        centred = xd - x_mean.unsqueeze(1) if fit_intercept else xd
        return (centred * w.unsqueeze(2)).transpose(1, 2) @ centred
    if x.shape[0] == 1 and w.shape[0] == 1:
        gram = ((xd[0] * w.T).T @ xd[0]).unsqueeze(0)
    elif x.shape[0] == 1:
        n, m = xd.shape[1:]
        scaled = w.T.contiguous().unsqueeze(2) * xd[0].unsqueeze(1)  # (S, R, M)
        gram = (scaled.reshape(n, -1).T @ xd[0]).view(-1, m, m)
    else:
        gram = (xd * w.unsqueeze(2)).transpose(1, 2) @ xd
    if fit_intercept:
        gram = gram - w_sum.view(-1, 1, 1) * x_mean.unsqueeze(2) * x_mean.unsqueeze(1)
    return gram


def _centre(
    x: Tensor, y: Tensor, w: Tensor, w_sum: Tensor, fit_intercept: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``x − x̄``, ``x̄`` (B, M), ``y − ȳ``, ``ȳ`` (R,) with weighted means (zero without
    intercept)."""
    if not fit_intercept:
        return x, x.new_zeros(x.shape[0], x.shape[2]), y, y.new_zeros(y.shape[0])
    x_mean = _weighted_sum(x, w) / w_sum.unsqueeze(1)
    y_mean = (w * y).sum(1) / w_sum
    return x - x_mean.unsqueeze(1), x_mean, y - y_mean.unsqueeze(1), y_mean


class Design(NamedTuple):
    """The weighted, centred regression data ``A = √w (x − x̄)``, ``b = √w (y − ȳ)``."""

    a: Tensor  # (R, S, M)
    b: Tensor  # (R, S)
    x_mean: Tensor
    y_mean: Tensor
    w_sum: Tensor


def design(x: Tensor, y: Tensor, w: Tensor | None = None, fit_intercept: bool = True) -> Design:
    """The data of :func:`moments` before the products (for wide problems), in double."""
    wd = _check_batch(x, y, w)
    w_sum = wd.sum(1)
    xd, x_mean, yd, y_mean = _centre(x.to(_SOLVE), y.to(_SOLVE), wd, w_sum, fit_intercept)
    root = wd.sqrt()
    return Design(xd * root.unsqueeze(2), yd * root, x_mean, y_mean, w_sum)


def top_eigenvalue_bound(q: Tensor, squarings: int = 4) -> Tensor:
    """An upper bound on the largest eigenvalue of each PSD matrix of ``q`` (R, M, M).

    ``λ_max^(2^k) ≤ ‖Q^(2^k)‖_F ≤ M · λ_max^(2^k)``, so ``k`` squarings bound ``λ_max`` within a
    factor ``M^(2^-k)`` (at most 1.16 for M = 100, k = 4; about 1.02 in practice). Batched
    single-precision products with a margin for rounding: batched eigensolvers are slow on
    CPU with several threads.
    """
    scale = q.diagonal(dim1=1, dim2=2).sum(1).clamp_min(1e-300).view(-1, 1, 1)  # ≥ λ_max
    p = (q / scale).to(torch.float32)
    log_bound = torch.zeros_like(scale)
    for j in range(1, squarings + 1):
        p = p @ p
        norm = torch.linalg.matrix_norm(p).clamp_min(1e-30).view(-1, 1, 1)
        p = p / norm
        log_bound = log_bound + norm.to(scale.dtype).log() / 2**j
    return scale * log_bound.exp() * 1.001


def power_estimate(apply: Callable[[Tensor], Tensor], v: Tensor, steps: int = 30) -> Tensor:
    """The largest eigenvalue of the PSD operator ``apply`` by power iteration from ``v``
    (row vectors ``(R, 1, M)``).

    A Rayleigh quotient (from below); with 30 steps the components of eigenvalues below
    ``0.9 λ_max`` shrink by ``0.9^60``, so ``1.12 ×`` the result is an upper bound unless ``v``
    is nearly orthogonal to the top of the spectrum (``v`` is random).
    """
    for _ in range(steps):
        v = apply(v)
        v = v / torch.linalg.vector_norm(v, dim=2, keepdim=True).clamp_min(1e-300)
    return (v * apply(v)).sum((1, 2)).view(-1, 1, 1)


def _random_start(shape: tuple[int, ...], device: torch.device) -> Tensor:
    """A fixed pseudo-random vector (its own generator: the global RNG is left alone)."""
    gen = torch.Generator(device=device).manual_seed(0)
    return torch.randn(shape, generator=gen, device=device, dtype=_SOLVE)


def _diag_scale(diag: Tensor, n: int) -> Tensor:
    """``trace / n`` (1 where it is zero): the scale of the jitter, ``(R, 1, 1)``."""
    scale = diag.sum(1) / n
    return torch.where(scale > 0, scale, torch.ones_like(scale)).view(-1, 1, 1)


def _solve_psd(a: Tensor, b: Tensor) -> Tensor:
    """``a⁻¹ b`` for symmetric positive definite ``a`` (R or 1, K, K) and ``b`` (R, K).

    One matrix for all rows is factorised once and solved with ``R`` right-hand sides.
    """
    factor = torch.linalg.cholesky(a)
    if a.shape[0] == 1 and b.shape[0] > 1:
        return torch.cholesky_solve(b.T.unsqueeze(0), factor).squeeze(0).T
    return torch.cholesky_solve(b.unsqueeze(2), factor).squeeze(2)


def _ridge_solve(a: Tensor, b: Tensor, ridge: float, n_feat: int) -> Tensor:
    """``(AᵀA + λI)⁻¹ Aᵀ b`` in sample space: ``Aᵀ (AAᵀ + λI)⁻¹ b`` (R, M)."""
    k = a @ a.transpose(1, 2)  # (R, S, S)
    lam = ridge + _JITTER * _diag_scale(k.diagonal(dim1=1, dim2=2), n_feat)
    eye = torch.eye(k.shape[-1], dtype=_SOLVE, device=k.device)
    return (_solve_psd(k + lam * eye, b).unsqueeze(1) @ a).squeeze(1)


def _finish(coef: Tensor, mean: tuple[Tensor, Tensor], dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    x_mean, y_mean = mean
    intercept = y_mean - (x_mean * coef).sum(1)
    return coef.to(dtype), intercept.to(dtype)


def _out_dtype(y: Tensor) -> torch.dtype:
    return y.dtype if y.is_floating_point() else torch.get_default_dtype()


def fit_ridge(
    x: Tensor, y: Tensor, w: Tensor | None = None, alpha: float = 1.0, fit_intercept: bool = True
) -> tuple[Tensor, Tensor]:
    """Weighted ridge regressions: minimise ``Σ w (y − b − x·β)² + α‖β‖²`` per row.

    The objective of scikit-learn's ``Ridge`` (sample weights taken as given). Returns
    ``coef`` (R, M) and ``intercept`` (R,) in the targets' dtype.
    """
    if _wide(x):
        d = design(x, y, w, fit_intercept)
        coef = _ridge_solve(d.a, d.b, alpha, x.shape[2])
        return _finish(coef, (d.x_mean, d.y_mean), _out_dtype(y))
    m = moments(x, y, w, fit_intercept)
    eye = torch.eye(m.gram.shape[-1], dtype=_SOLVE, device=m.gram.device)
    ridge = alpha + _JITTER * _diag_scale(m.gram.diagonal(dim1=1, dim2=2), x.shape[2])
    coef = _solve_psd(m.gram + ridge * eye, m.cross)
    return _finish(coef, (m.x_mean, m.y_mean), _out_dtype(y))


def fit_least_squares(
    x: Tensor, y: Tensor, w: Tensor | None = None, fit_intercept: bool = True
) -> tuple[Tensor, Tensor]:
    """Weighted least squares per row, minimum-norm where the design is rank deficient.

    Same solution as scikit-learn's ``LinearRegression`` with ``sample_weight``. Returns
    ``coef`` (R, M) and ``intercept`` (R,).
    """
    return fit_ridge(x, y, w, alpha=0.0, fit_intercept=fit_intercept)


Operator = Callable[[Tensor], Tensor]


def _lasso_gap(apply: Operator, qq: Tensor, yy: Tensor, beta: Tensor, alpha: float) -> Tensor:
    """Duality gap of ``½ βᵀQβ − qᵀβ + ½ yy + α‖β‖₁`` at ``beta`` (R, 1, M); ``apply`` is ·Q."""
    qb = apply(beta).squeeze(1)
    b = beta.squeeze(1)
    bq = (b * qq).sum(1)
    r2 = (yy - 2 * bq + (b * qb).sum(1)).clamp_min(0)
    primal = 0.5 * r2 + alpha * b.abs().sum(1)
    dual_norm = (qq - qb).abs().amax(1)
    s = torch.where(dual_norm > alpha, alpha / dual_norm.clamp_min(1e-300), torch.ones_like(r2))
    dual = s * (yy - bq) - 0.5 * s * s * r2
    return primal - dual


def fit_lasso(
    x: Tensor,
    y: Tensor,
    w: Tensor | None = None,
    alpha: float = 1.0,
    fit_intercept: bool = True,
    max_iter: int = 1000,
    tol: float = 1e-4,
) -> tuple[Tensor, Tensor]:
    """Weighted lasso regressions, the objective of scikit-learn's ``Lasso``, per row.

    Minimises ``(1 / (2 Σw)) Σ w (y − b − x·β)² + α‖β‖₁`` (scikit-learn rescales sample
    weights to sum to the number of samples, which gives this objective) with an unpenalised
    intercept. All rows are solved together by FISTA with step ``1 / L`` for an upper bound
    ``L`` on the largest eigenvalue of the normalised Gram matrix ``Q``, until every row's
    duality gap is below ``tol · Σ w ỹ² / Σ w`` (scikit-learn's stopping rule) or ``max_iter``
    iterations. Rows whose zero coefficients already satisfy the optimality conditions
    (``|Σ w x̃ ỹ| / Σ w ≤ α`` for every feature) are left out before any Gram matrix is
    formed. ``Q`` is formed (in single precision for single-precision data) unless there
    are more features than samples or more than 256 features; then ``·Q`` is two products with
    the data.
    """
    on_data = _wide(x) or (x.dim() == 3 and x.shape[2] > 256)  # forming Q would cost more
    if on_data:
        d = design(x, y, w, fit_intercept)
        n = d.w_sum.clamp_min(1e-300).view(-1, 1, 1)
        a32 = d.a.to(torch.float32)  # the products stream A: single precision halves the cost
        a32_t = a32.mT.contiguous()
        # row vectors v (R, 1, M): v Q = ((v Aᵀ) A) / n
        apply: Operator = lambda v: ((v.to(a32.dtype) @ a32_t) @ a32).to(_SOLVE) / n  # noqa: E731
        qq = (d.b.unsqueeze(1) @ d.a).squeeze(1) / n.view(-1, 1)
        yy, mean = (d.b * d.b).sum(1) / n.view(-1), (d.x_mean, d.y_mean)
        if bool((qq.abs().amax(1) <= alpha).all()):  # zero satisfies the optimality conditions
            return _finish(torch.zeros_like(qq), mean, _out_dtype(y))
        start = _random_start((qq.shape[0], 1, qq.shape[1]), qq.device)
        lip = (1.12 * power_estimate(apply, start)).clamp_min(1e-300)
        step: Operator = lambda v: v + qq.unsqueeze(1) - apply(v) / lip  # noqa: E731
        gap = lambda g: _lasso_gap(apply, qq, yy, g / lip, alpha)  # noqa: E731
        gamma = _fista(step, gap, qq, alpha, tol * yy, max_iter)
        return _finish((gamma / lip).squeeze(1), mean, _out_dtype(y))
    dtype = _SOLVE if torch.float64 in (x.dtype, y.dtype) else torch.float32
    m = first_moments(x, y, w, fit_intercept, dtype)
    w_sum = m.w_sum.clamp_min(torch.finfo(dtype).tiny)
    qq, yy = m.cross / w_sum.unsqueeze(1), m.yy / w_sum
    coef = torch.zeros_like(qq)
    busy = qq.abs().amax(1) > alpha  # elsewhere zero satisfies the optimality conditions
    if bool(busy.any()):
        rows = None if bool(busy.all()) else busy.nonzero().squeeze(1)
        pick = lambda t: t if rows is None or t.shape[0] == 1 else t[rows]  # noqa: E731
        wd = pick(_check_batch(x, y, w).to(dtype))
        xs, x_mean, w_sum = pick(x), pick(m.x_mean), pick(w_sum)
        q = centred_gram(xs, wd, x_mean, pick(m.w_sum), fit_intercept) / w_sum.view(-1, 1, 1)
        beta = _lasso_gram(q, pick(qq), pick(yy), alpha, tol, max_iter, xs, wd, fit_intercept)
        coef = beta if rows is None else coef.index_copy(0, rows, beta)
    return _finish(coef, (m.x_mean, m.y_mean), _out_dtype(y))


def _lasso_gram(
    q: Tensor,
    qq: Tensor,
    yy: Tensor,
    alpha: float,
    tol: float,
    max_iter: int,
    x: Tensor,
    w: Tensor,
    fit_intercept: bool,
) -> Tensor:
    """FISTA with the normalised Gram matrices ``q`` (B, M, M) formed: coefficients (R, M)."""
    lip = _gram_bound(x, w, q, fit_intercept).clamp_min(torch.finfo(q.dtype).tiny)
    # FISTA on γ = L β (rows (R, 1, M)): the gradient step is γ − γQ/L + q, fused into one
    # product γ (I − Q/L) + q, and the soft threshold is α for every row, whatever its L
    step_matrix = torch.eye(q.shape[-1], dtype=q.dtype, device=q.device) - q / lip
    row_q = qq.unsqueeze(1)
    step: Operator
    if step_matrix.shape[0] == row_q.shape[0]:
        step = lambda v: torch.baddbmm(row_q, v, step_matrix)  # noqa: E731  (symmetric)
    else:  # one matrix for every row: one product of all rows
        matrix = step_matrix[0]
        step = lambda v: torch.addmm(qq, v.squeeze(1), matrix).unsqueeze(1)  # noqa: E731
    apply = lambda v: v @ q  # noqa: E731  (Q is symmetric: v Q = (Q vᵀ)ᵀ)
    gap = lambda g: _lasso_gap(apply, qq, yy, g / lip, alpha)  # noqa: E731
    return (_fista(step, gap, qq, alpha, tol * yy, max_iter) / lip).squeeze(1)


def _gram_bound(x: Tensor, w: Tensor, q: Tensor, fit_intercept: bool) -> Tensor:
    """Upper bounds ``(R, 1, 1)`` on the largest eigenvalue of each normalised Gram matrix
    ``Q_r = Σ_s w_rs (x_s − x̄_r)(x_s − x̄_r)ᵀ / Σ_s w_rs``.

    With inputs shared by every row one bound serves all: the weighted scatter about the
    weighted mean is at most that about any other point, so ``Q_r ≼ (max_s w_rs / Σ_s w_rs)
    Σ_s (x_s − c)(x_s − c)ᵀ`` with ``c`` the plain mean (or 0 without intercept). It is loose
    by the ratio of the largest weight to the mean one; rows where that exceeds 1.5 get a
    bound of their own.
    """
    if x.shape[0] != 1 or q.shape[0] == 1:
        return top_eigenvalue_bound(q)
    x0 = x[0].to(q.dtype)
    c = x0.mean(0, keepdim=True) if fit_intercept else torch.zeros_like(x0[:1])
    centred = x0 - c
    scatter = top_eigenvalue_bound((centred.T @ centred).unsqueeze(0))  # (1, 1, 1)
    wd = w.to(q.dtype)
    spread = wd.amax(1) / wd.sum(1).clamp_min(torch.finfo(q.dtype).tiny)  # (R,)
    bound = scatter * spread.view(-1, 1, 1)
    loose = spread * x0.shape[0] > 1.5
    if bool(loose.any()):
        bound[loose] = torch.minimum(bound[loose], top_eigenvalue_bound(q[loose]))
    return bound


def _fista(
    step: Operator, gap: Operator, qq: Tensor, alpha: float, stop: Tensor, max_iter: int
) -> Tensor:
    """FISTA from zero on rows ``γ`` (R, 1, M): ``step`` is the gradient step, ``α`` the soft
    threshold; stops once ``gap(γ) <= stop`` for every row (checked now and then)."""
    gamma = torch.zeros(qq.shape[0], 1, qq.shape[1], dtype=qq.dtype, device=qq.device)
    point, t = gamma, 1.0
    for k in range(1, max_iter + 1):
        new = torch.nn.functional.softshrink(step(point), alpha)
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        point = torch.lerp(gamma, new, 1 + (t - 1) / t_new)
        gamma, t = new, t_new
        check = k % 10 == 0 or k in (2, 5)  # easy problems stop early
        if check and bool((gap(gamma) <= stop).all()):
            break
    return gamma


def _weighted_gram(x: Tensor, xd: Tensor, w: Tensor) -> Tensor:
    """``Σ_s w_s x_s x_sᵀ`` ``(R, M, M)`` in double precision (``xd`` is ``x`` in double).

    Binary ``x`` with whole-number weights gives integer sums, exact in single precision
    (faster) while they stay below 2^24.
    """
    if x.dtype == torch.bool and bool((w == w.round()).all() and w.sum(1).max() < 2**24):
        xf = x.to(torch.float32)
        return ((xf * w.to(torch.float32).unsqueeze(2)).transpose(1, 2) @ xf).to(_SOLVE)
    return (xd * w.unsqueeze(2)).transpose(1, 2) @ xd


def fit_shapley(x: Tensor, y: Tensor, w: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Kernel SHAP's regression: weighted least squares under the efficiency constraints.

    ``x`` holds binary coalitions; every row must contain the empty coalition (all zeros) and
    the full one (all ones). The fitted model interpolates both exactly: the intercept is
    ``f(∅)`` and the coefficients sum to ``f(full) − f(∅)`` (to float rounding). The rest is the
    weighted least-squares fit of the remaining coalitions on the constraint set (minimum-norm
    departure from an even split where the samples do not determine it).
    """
    wd = _check_batch(x, y, w)
    xd, yd = x.to(_SOLVE), y.to(_SOLVE)
    n_feat = xd.shape[-1]
    size = xd.sum(2)
    empty, full = (size == 0).to(_SOLVE), (size == n_feat).to(_SOLVE)
    f0 = (yd * empty).sum(1) / empty.sum(1)  # NaN when absent: checked by callers
    delta = (yd * full).sum(1) / full.sum(1) - f0
    even = delta / n_feat
    resid = yd - f0.unsqueeze(1) - size * even.unsqueeze(1)  # after the even split
    wd = wd * (1 - empty - full)  # the end points fit exactly whatever θ: leave them out
    if _wide(x):  # rows of x P (P = I − 11ᵀ/M) are orthogonal to 1, and so is θ = (xP)ᵀu
        root = wd.sqrt()
        a = (xd - size.unsqueeze(2) / n_feat) * root.unsqueeze(2)
        theta = _ridge_solve(a, resid * root, 0.0, n_feat)
    else:
        theta = _projected_solve(
            _weighted_gram(x, xd, wd), ((wd * resid).unsqueeze(1) @ xd).squeeze(1)
        )
    theta = theta - theta.mean(1, keepdim=True)
    return (theta + even.unsqueeze(1)).to(_out_dtype(y)), f0.to(_out_dtype(y))


def _projected_solve(gram: Tensor, cross: Tensor) -> Tensor:
    """Minimum-norm ``θ`` with ``Σθ = 0`` of ``P G P θ = P c``, ``P = I − 11ᵀ/M``."""
    n_feat = gram.shape[-1]
    g = gram.mean(2)
    gram_p = gram - g.unsqueeze(2) - g.unsqueeze(1) + g.mean(1).view(-1, 1, 1)
    cross_p = cross - cross.mean(1, keepdim=True)
    scale = _diag_scale(gram.diagonal(dim1=1, dim2=2), n_feat)
    eye = torch.eye(n_feat, dtype=_SOLVE, device=gram.device)
    ones = torch.full_like(eye, 1.0 / n_feat)  # lifts the constrained direction off zero
    return _solve_psd(gram_p + scale * (_JITTER * eye + ones), cross_p)
