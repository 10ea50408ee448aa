"""EK-FAC: exact where the Kronecker factorisation is exact; leave-one-out ranking otherwise."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from perspicio._core.validate import ArgumentError
from perspicio.influence import EKFACInfluence, logistic_loo, loo_correlation
from perspicio.influence.evaluation import fit_logistic_regression

pytestmark = pytest.mark.usefixtures("float64")


def keep(m: nn.Module, state: Any) -> float:
    return 1.0


def per_example_grads(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    rows = []
    for i in range(len(X)):
        gs = torch.autograd.grad(model(X[i : i + 1]).sum(), list(model.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in gs]))
    return torch.stack(rows)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (lambda: nn.Linear(4, 3), (4,)),
        (lambda: nn.Linear(4, 3, bias=False), (4,)),
        (lambda: nn.Conv2d(2, 3, 3), (2, 3, 3)),
    ],
    ids=["linear", "linear-no-bias", "conv-one-position"],
)
def test_exact_when_the_factorisation_is(layer: Any, shape: tuple[int, ...]) -> None:
    """One layer, the output summed as the loss: every per-example gradient is ``1 a^T``.

    Then ``sum_n vec(G_n) vec(G_n)^T = (1 1^T) (x) A`` is exactly Kronecker, its eigenbasis is
    the factors', and EK-FAC's corrected eigenvalues are its eigenvalues: the scores must equal
    ``g_x^T (F + damping I)^{-1} g_z`` with the empirical Fisher ``F`` formed densely.
    """
    torch.manual_seed(0)
    model = nn.Sequential(layer(), nn.Flatten())
    X = torch.randn(12, *shape)
    data = TensorDataset(X, torch.zeros(12))
    ekfac = EKFACInfluence(model, data, None, keep, batch_size=5, damping=0.3)
    G = per_example_grads(model, X)
    F = G.T @ G + 0.3 * torch.eye(G.shape[1])
    expected = G[:3] @ torch.linalg.solve(F, G.T)
    torch.testing.assert_close(ekfac.influence((X[:3], torch.zeros(3))), expected)
    torch.testing.assert_close(ekfac.inverse_hvp(G[:3]), torch.linalg.solve(F, G[:3].T).T)
    torch.testing.assert_close(
        ekfac.self_influence(), torch.diagonal(G @ torch.linalg.solve(F, G.T))
    )


@pytest.mark.parametrize("conv", [False, True])
def test_eigenvalues_are_the_second_moments_in_the_eigenbasis(conv: bool) -> None:
    """Cross-entropy on two layers: Lambda_ij = sum_n (Q_S^T G_n Q_A)_ij^2, by brute force."""
    torch.manual_seed(0)
    if conv:
        model = nn.Sequential(nn.Conv2d(1, 2, 2), nn.Tanh(), nn.Flatten(), nn.Linear(8, 2))
        X = torch.randn(10, 1, 3, 3)
    else:
        model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        X = torch.randn(10, 3)
    y = torch.randint(0, 2, (10,))
    loss = nn.CrossEntropyLoss(reduction="sum")
    ekfac = EKFACInfluence(model, DataLoader(TensorDataset(X, y), 4), None, keep, loss_fn=loss,
                           sample_wise_grads_per_batch=True)  # fmt: skip
    for f, layer in zip(ekfac.factors, (model[0], model[-1])):
        expected = torch.zeros_like(f.eigenvalues)
        for i in range(len(X)):
            gw, gb = torch.autograd.grad(
                loss(model(X[i : i + 1]), y[i : i + 1]), [layer.weight, layer.bias]
            )
            G = torch.cat([gw.reshape(len(gw), -1), gb[:, None]], dim=1)
            expected += (f.q_s.T @ G @ f.q_a) ** 2
        torch.testing.assert_close(f.eigenvalues, expected)
        # the bases are orthonormal eigenbases
        torch.testing.assert_close(f.q_a.T @ f.q_a, torch.eye(len(f.q_a)))


def test_ranks_like_leave_one_out_on_logistic_regression() -> None:
    n, d, l2 = 400, 8, 1.0
    gen = torch.Generator().manual_seed(0)
    X, w = torch.randn(n, d, generator=gen), torch.randn(d, generator=gen)
    y = (torch.rand(n, generator=gen) < torch.sigmoid(X @ w)).double()
    Xt = torch.randn(6, d, generator=gen)
    yt = (torch.rand(6, generator=gen) < torch.sigmoid(Xt @ w)).double()
    theta = fit_logistic_regression(X, y, l2)
    model = nn.Sequential(nn.Linear(d, 1), nn.Flatten(0))
    with torch.no_grad():
        model[0].weight.copy_(theta[:d][None])
        model[0].bias.copy_(theta[d:])
    ekfac = EKFACInfluence(model, TensorDataset(X, y), None, keep, batch_size=100,
                           loss_fn=nn.BCEWithLogitsLoss(reduction="none"), damping=l2)  # fmt: skip
    rho = loo_correlation(ekfac.influence((Xt, yt)), logistic_loo(X, y, l2, Xt, yt))
    assert rho >= 0.85


def test_bad_input() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    data = TensorDataset(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    loss = nn.CrossEntropyLoss(reduction="none")
    with pytest.raises(ArgumentError, match="supports Linear and Conv2d layers, got LayerNorm"):
        EKFACInfluence(model, data, None, keep, layers=[model[1]], loss_fn=loss)
    with pytest.raises(ArgumentError, match="damping must be >= 0"):
        EKFACInfluence(model, data, None, keep, loss_fn=loss, damping=-1.0)
    conv = nn.Sequential(nn.Conv2d(2, 2, 3, groups=2), nn.Flatten())
    with pytest.raises(ArgumentError, match="groups=1"):
        EKFACInfluence(conv, TensorDataset(torch.randn(2, 2, 3, 3), torch.zeros(2)), None, keep)


def test_sampled_labels() -> None:
    """A sampler that returns the data's labels gives the empirical-Fisher factors; a random
    one (true Fisher) runs and changes them."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    X, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    data = TensorDataset(X, y)
    loss = nn.CrossEntropyLoss(reduction="none")
    labels = iter([y[:5], y[5:]] * 2)
    plain = EKFACInfluence(model, data, None, keep, loss_fn=loss, batch_size=5)
    same = EKFACInfluence(model, data, None, keep, loss_fn=loss, batch_size=5,
                          sample_labels=lambda out: next(labels))  # fmt: skip
    test = (X[:2], y[:2])
    torch.testing.assert_close(same.influence(test), plain.influence(test))

    def draw(out: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Categorical(logits=out).sample()

    sampled = EKFACInfluence(
        model, data, None, keep, loss_fn=loss, batch_size=5, sample_labels=draw
    )
    assert not torch.allclose(sampled.influence(test), plain.influence(test))
