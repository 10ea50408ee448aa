"""The evaluation harness: Spearman, exact leave-one-out, and the linear datamodeling score."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from perspicio._core.validate import ArgumentError
from perspicio.influence import (
    NaiveInfluenceFunction,
    linear_datamodeling_score,
    logistic_loo,
    spearman,
)
from perspicio.influence.evaluation import (
    fit_logistic_regression,
    logistic_loss,
    train_full_batch,
)

pytestmark = pytest.mark.usefixtures("float64")


@pytest.mark.parametrize("ties", [False, True])
def test_spearman_matches_scipy(ties: bool) -> None:
    stats = pytest.importorskip("scipy.stats")
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 20, generator=gen), torch.randn(3, 20, generator=gen)
    if ties:
        a, b = a.round(), (2 * b).round()
    ours = spearman(a, b)
    for i in range(3):
        assert ours[i].item() == pytest.approx(stats.spearmanr(a[i], b[i]).statistic, abs=1e-12)


def test_logistic_loo_equals_retraining_from_scratch() -> None:
    gen = torch.Generator().manual_seed(0)
    X, y = torch.randn(30, 3, generator=gen), (torch.rand(30, generator=gen) < 0.5).double()
    Xt, yt = torch.randn(2, 3, generator=gen), torch.tensor([0.0, 1.0])
    loo = logistic_loo(X, y, 0.5, Xt, yt)
    full = fit_logistic_regression(X, y, 0.5)
    # the gradient of the objective vanishes at the solution
    p = torch.sigmoid(torch.cat([X, torch.ones(30, 1)], 1) @ full)
    grad = (p - y) @ torch.cat([X, torch.ones(30, 1)], 1) + 0.5 * full
    assert grad.abs().max() < 1e-10
    for i in (0, 7, 29):
        keep = torch.arange(30) != i
        model = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))
        nn.init.zeros_(model[0].weight)
        nn.init.zeros_(model[0].bias)
        train_full_batch(model, X[keep], y[keep], nn.BCEWithLogitsLoss(reduction="none"), l2=0.5)
        theta = torch.cat([model[0].weight.detach()[0], model[0].bias.detach()])
        expected = logistic_loss(theta, Xt, yt) - logistic_loss(full, Xt, yt)
        torch.testing.assert_close(loo[:, i], expected, atol=1e-7, rtol=1e-5)


def test_linear_datamodeling_score_separates_good_scores_from_noise() -> None:
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(40, 2, generator=gen)
    y = (X[:, 0] * X[:, 1] > 0).long()  # xor-like: needs the hidden layer
    Xt = torch.randn(5, 2, generator=gen)
    yt = (Xt[:, 0] * Xt[:, 1] > 0).long()
    loss = nn.CrossEntropyLoss(reduction="none")
    l2 = 0.1

    def fresh() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))

    def retrain(idx: torch.Tensor) -> nn.Module:
        return train_full_batch(fresh(), X[idx], y[idx], loss, l2=l2, steps=50)

    def measure(model: nn.Module) -> torch.Tensor:
        with torch.no_grad():
            return -loss(model(Xt), yt)

    model = train_full_batch(fresh(), X, y, loss, l2=l2, steps=50)
    fn = NaiveInfluenceFunction(model, TensorDataset(X, y), None, lambda m, s: 1.0, loss_fn=loss,
                                batch_size=40, projection_dim=None, hessian_reg=l2)  # fmt: skip
    scores = fn.influence((Xt, yt))
    assert isinstance(scores, torch.Tensor)
    good = linear_datamodeling_score(scores, retrain, measure, n_subsets=10, seed=1)
    noise = linear_datamodeling_score(
        torch.randn(5, 40, generator=gen), retrain, measure, n_subsets=10, seed=1
    )
    assert good > 0.3 and good > noise + 0.2


def test_bad_input() -> None:
    with pytest.raises(ArgumentError, match="equal shapes"):
        spearman(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ArgumentError, match="alpha must be in"):
        linear_datamodeling_score(
            torch.zeros(2, 5), lambda i: None, lambda m: torch.zeros(2), alpha=1.0
        )
    with pytest.raises(ArgumentError, match="n_subsets must be at least 3"):
        linear_datamodeling_score(
            torch.zeros(2, 5), lambda i: None, lambda m: torch.zeros(2), n_subsets=2
        )
