"""Ground truth for influence scores: leave-one-out retraining and the linear datamodeling score.

- **Leave-one-out** (Koh & Liang, 2017, section 5.1): on a convex model the effect of removing
  one training example can be computed exactly by retraining; an influence method should rank
  training examples like the true change of the test loss. :func:`logistic_loo` retrains an
  L2-regularised logistic regression without each example (all at once: batched Newton steps,
  warm-started at the full solution, in float64).
- **Linear datamodeling score** (Park et al., "TRAK: Attributing Model Behavior at Scale",
  ICML 2023, https://arxiv.org/abs/2303.14186): retrain on random subsets; the summed scores
  of a subset's examples should rank subsets like the measured test behaviour.
  :func:`linear_datamodeling_score` takes any retraining and measuring functions;
  :func:`train_full_batch` is a deterministic trainer for small models.

Scores follow the sign of the library's methods: positive means the training example helps
(lowers the test loss).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.validate import ArgumentError


def _ranks(x: Tensor) -> Tensor:
    """Ranks along the last dimension, ties given their average rank."""
    order = x.argsort(dim=-1)
    ranks = torch.empty_like(x, dtype=torch.float64)
    ranks.scatter_(-1, order, torch.arange(x.shape[-1], dtype=torch.float64).expand_as(x).clone())
    flat_x, flat_r = x.reshape(-1, x.shape[-1]), ranks.reshape(-1, x.shape[-1])
    for row_x, row_r in zip(flat_x, flat_r):
        values, inverse, counts = torch.unique(row_x, return_inverse=True, return_counts=True)
        if len(values) < len(row_x):  # average the ranks of ties
            sums = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, row_r)
            row_r.copy_((sums / counts)[inverse])
    return ranks


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation along the last dimension (one value per row)."""
    if a.shape != b.shape:
        raise ArgumentError(
            f"spearman needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    ra, rb = _ranks(a.detach().cpu()), _ranks(b.detach().cpu())
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    return (ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1)).clamp_min(1e-300)


def _augment(X: Tensor) -> Tensor:
    return torch.cat([X, X.new_ones(len(X), 1)], dim=1)


def fit_logistic_regression(
    X: Tensor,
    y: Tensor,
    l2: float,
    weights: Tensor | None = None,
    init: Tensor | None = None,
    tol: float = 1e-12,
    max_steps: int = 100,
) -> Tensor:
    """Minimise ``sum_n w_n BCE(x_n . t + b, y_n) + l2/2 |[t, b]|^2`` by Newton's method.

    ``weights`` may be ``(m, n)``: ``m`` problems solved together (e.g. one per left-out
    example). Returns ``[t, b]`` per problem: ``(d + 1,)`` or ``(m, d + 1)``.
    """
    Xa = _augment(X.double())
    y = y.double().reshape(-1)
    w = torch.ones(1, len(X), dtype=torch.float64) if weights is None else weights.double()
    w = w.reshape(-1, len(X))
    eye = torch.eye(Xa.shape[1], dtype=torch.float64)
    theta = (
        Xa.new_zeros(len(w), Xa.shape[1])
        if init is None
        else init.double().expand(len(w), -1).clone()
    )
    for _ in range(max_steps):
        p = torch.sigmoid(theta @ Xa.T)  # (m, n)
        grad = ((p - y) * w) @ Xa + l2 * theta
        hess = torch.einsum("mn,ni,nj->mij", w * p * (1 - p), Xa, Xa) + l2 * eye
        step = torch.linalg.solve(hess, grad.unsqueeze(-1)).squeeze(-1)
        theta = theta - step
        if step.abs().max() < tol:
            break
    return theta[0] if weights is None or weights.dim() == 1 else theta


def logistic_loss(theta: Tensor, X: Tensor, y: Tensor) -> Tensor:
    """Per-example BCE loss ``(..., n)`` of parameters ``theta`` ``(..., d + 1)``."""
    logits = theta @ _augment(X.double()).T
    return nn.functional.binary_cross_entropy_with_logits(
        logits, y.double().reshape(-1).expand_as(logits), reduction="none"
    )


def logistic_loo(X: Tensor, y: Tensor, l2: float, X_test: Tensor, y_test: Tensor) -> Tensor:
    """``(n_test, n)``: exact change of each test loss when training example ``i`` is left out.

    Positive where the example helped that test example (its removal raises the loss).
    """
    full = fit_logistic_regression(X, y, l2)
    weights = 1.0 - torch.eye(len(X), dtype=torch.float64)
    loo = fit_logistic_regression(X, y, l2, weights=weights, init=full)  # (n, d + 1)
    return (logistic_loss(loo, X_test, y_test) - logistic_loss(full, X_test, y_test)).T


def loo_correlation(scores: Tensor, loo: Tensor) -> float:
    """Mean over test examples of the Spearman correlation of scores with the LOO effects."""
    return float(spearman(scores, loo).mean())


def linear_datamodeling_score(
    scores: Tensor,
    retrain: Callable[[Tensor], Any],
    measure: Callable[[Any], Tensor],
    n_subsets: int = 20,
    alpha: float = 0.5,
    seed: int = 0,
) -> float:
    """The LDS of ``scores`` ``(n_test, n_train)`` (Park et al., 2023).

    For ``n_subsets`` random subsets holding a fraction ``alpha`` of the training data,
    ``retrain(indices)`` trains a model on them and ``measure(model)`` gives ``(n_test,)``
    values that the examples should raise (e.g. minus the test losses). The score is the mean
    over test examples of the Spearman correlation, across subsets, between the subset's
    summed scores and the measured value.
    """
    n_train = scores.shape[1]
    if not 0 < alpha < 1:
        raise ArgumentError(f"alpha must be in (0, 1), got {alpha}")
    if n_subsets < 3:
        raise ArgumentError(f"n_subsets must be at least 3, got {n_subsets}")
    gen = torch.Generator().manual_seed(seed)
    size = max(1, round(alpha * n_train))
    predicted, actual = [], []
    for _ in range(n_subsets):
        idx = torch.randperm(n_train, generator=gen)[:size].sort().values
        predicted.append(scores[:, idx.to(scores.device)].sum(1).cpu())
        actual.append(torch.as_tensor(measure(retrain(idx))).detach().reshape(-1).cpu())
    return float(spearman(torch.stack(predicted).T.double(), torch.stack(actual).T.double()).mean())


def train_full_batch(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    l2: float = 0.0,
    steps: int = 200,
) -> nn.Module:
    """Train ``model`` in place by full-batch L-BFGS on ``sum loss + l2/2 |params|^2``.

    Deterministic for a given initialisation: suited to the retrains of a small model.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=steps, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-14)  # fmt: skip

    def closure() -> Tensor:
        opt.zero_grad()
        loss = loss_fn(model(X), y).sum() + 0.5 * l2 * sum((p * p).sum() for p in params)
        loss.backward()
        return loss

    opt.step(closure)
    opt.zero_grad(set_to_none=True)
    return model
