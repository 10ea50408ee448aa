"""Influence functions: a dense reference, Arnoldi against it, and leave-one-out retraining."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from perspicio._core.validate import ArgumentError
from perspicio.influence import (
    ArnoldiInfluenceFunction,
    NaiveInfluenceFunction,
    logistic_loo,
    loo_correlation,
)
from perspicio.influence.evaluation import fit_logistic_regression

pytestmark = pytest.mark.usefixtures("float64")


def keep(m: nn.Module, state: Any) -> float:
    return 1.0  # the model is used as it is


@pytest.fixture
def problem() -> dict[str, Any]:
    torch.manual_seed(0)
    X, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2))
    return dict(X=X, y=y, model=model, data=TensorDataset(X, y))


def dense_reference(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, reg: float
) -> tuple[Any, Any]:
    """Per-example gradients by loops and the Hessian by double backward, entry by entry."""
    params = list(model.parameters())
    loss_fn = nn.CrossEntropyLoss(reduction="sum")

    def flat_grad(loss: torch.Tensor, create: bool = False) -> torch.Tensor:
        return torch.cat(
            [g.reshape(-1) for g in torch.autograd.grad(loss, params, create_graph=create)]
        )

    grads = torch.stack(
        [flat_grad(loss_fn(model(X[i : i + 1]), y[i : i + 1])) for i in range(len(X))]
    )
    total = flat_grad(loss_fn(model(X), y), create=True)
    H = torch.stack([
        torch.cat([g.reshape(-1) for g in torch.autograd.grad(total[j], params, retain_graph=True)])
        for j in range(len(total))
    ])  # fmt: skip
    return grads, H + reg * torch.eye(len(H))


def test_naive_equals_the_dense_reference(problem: dict[str, Any]) -> None:
    p = problem
    fn = NaiveInfluenceFunction(p["model"], p["data"], None, keep, batch_size=5, projection_dim=None,
                                loss_fn=nn.CrossEntropyLoss(reduction="none"), hessian_reg=0.1,
                                hessian_inverse_tol=0.0)  # fmt: skip
    grads, H = dense_reference(p["model"], p["X"], p["y"], 0.1)
    # the MLP's Hessian is indefinite: the inverse is taken on its positive eigenvalues
    ls, vs = torch.linalg.eigh(H)
    inv = vs[:, ls > 0] @ torch.diag(1 / ls[ls > 0]) @ vs[:, ls > 0].T
    expected = grads[:4] @ inv @ grads.T
    torch.testing.assert_close(fn.influence((p["X"][:4], p["y"][:4])), expected)
    torch.testing.assert_close(fn.self_influence(), torch.einsum("np,pq,nq->n", grads, inv, grads))
    emb = fn.compute_intermediate_quantities((p["X"], p["y"]))
    torch.testing.assert_close(emb @ emb.T, grads @ inv @ grads.T)


def test_arnoldi_finds_the_top_eigenpairs(problem: dict[str, Any]) -> None:
    """With as many steps as parameters, the Krylov basis holds the top eigenvectors."""
    p = problem
    kwargs: dict[str, Any] = dict(loss_fn=nn.CrossEntropyLoss(reduction="none"), batch_size=5,
                                  hessian_reg=0.1, hessian_inverse_tol=0.0)  # fmt: skip
    naive = NaiveInfluenceFunction(p["model"], p["data"], None, keep, projection_dim=5, **kwargs)
    arnoldi = ArnoldiInfluenceFunction(p["model"], p["data"], None, keep, projection_dim=5,
                                       arnoldi_dim=21, arnoldi_tol=1e-10, **kwargs)  # fmt: skip
    test = (p["X"][:4], p["y"][:4])
    torch.testing.assert_close(arnoldi.influence(test), naive.influence(test), atol=1e-6, rtol=1e-5)


def test_low_rank_keeps_the_top_eigenpairs(problem: dict[str, Any]) -> None:
    p = problem
    fn = NaiveInfluenceFunction(p["model"], p["data"], None, keep, batch_size=16, projection_dim=3,
                                loss_fn=nn.CrossEntropyLoss(reduction="none"))  # fmt: skip
    _, H = dense_reference(p["model"], p["X"], p["y"], 1e-6)
    ls, vs = torch.linalg.eigh(H)  # the top three are positive here
    assert ls[-3] > 0
    expected = vs[:, -3:] @ torch.diag(1 / ls[-3:]) @ vs[:, -3:].T
    assert fn.R is not None
    torch.testing.assert_close(fn.R @ fn.R.T, expected)


def logistic_problem(n: int, d: int, seed: int = 0) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    X, w = torch.randn(n, d, generator=gen), torch.randn(d, generator=gen)
    y = (torch.rand(n, generator=gen) < torch.sigmoid(X @ w)).double()
    Xt = torch.randn(6, d, generator=gen)
    yt = (torch.rand(6, generator=gen) < torch.sigmoid(Xt @ w)).double()
    l2 = 1.0
    theta = fit_logistic_regression(X, y, l2)
    model = nn.Sequential(nn.Linear(d, 1), nn.Flatten(0))
    with torch.no_grad():
        model[0].weight.copy_(theta[:d][None])
        model[0].bias.copy_(theta[d:])
    return dict(X=X, y=y, Xt=Xt, yt=yt, l2=l2, model=model, loo=logistic_loo(X, y, l2, Xt, yt))


@pytest.mark.parametrize("n", [400])
def test_exact_influence_ranks_like_leave_one_out(n: int) -> None:
    p = logistic_problem(n, 8)
    fn = NaiveInfluenceFunction(p["model"], TensorDataset(p["X"], p["y"]), None, keep,
                                loss_fn=nn.BCEWithLogitsLoss(reduction="none"), batch_size=n,
                                projection_dim=None, hessian_reg=p["l2"], hessian_inverse_tol=0.0)  # fmt: skip
    rho = loo_correlation(fn.influence((p["Xt"], p["yt"])), p["loo"])
    assert rho >= 0.9


def test_bad_input(problem: dict[str, Any]) -> None:
    p = problem
    loss = nn.CrossEntropyLoss(reduction="none")
    with pytest.raises(ArgumentError, match="projection_dim must be a positive int"):
        NaiveInfluenceFunction(p["model"], p["data"], None, keep, loss_fn=loss, projection_dim=0)
    with pytest.raises(ArgumentError, match="arnoldi_dim must be a positive int"):
        ArnoldiInfluenceFunction(p["model"], p["data"], None, keep, loss_fn=loss, arnoldi_dim=0)
    with pytest.raises(ArgumentError, match="no eigenvalue above hessian_inverse_tol"):
        NaiveInfluenceFunction(
            p["model"], p["data"], None, keep, loss_fn=loss, hessian_inverse_tol=1e9
        )
    fn = NaiveInfluenceFunction(p["model"], p["data"], None, keep, loss_fn=loss)
    with pytest.raises(ArgumentError, match="k=17 is larger"):
        fn.influence((p["X"][:2], p["y"][:2]), k=17)
    with pytest.raises(ArgumentError, match='must be "none"'):
        NaiveInfluenceFunction(p["model"], p["data"], None, keep, loss_fn=nn.CrossEntropyLoss())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(arnoldi_tol=1e9), "the Arnoldi basis is empty"),
        (dict(arnoldi_tol=1e-8, hessian_inverse_tol=1e9), "restricted to the Krylov subspace"),
    ],
)
def test_arnoldi_errors_leave_the_model(
    problem: dict[str, Any], kwargs: dict[str, float], message: str
) -> None:
    p = problem
    before = {k: v.clone() for k, v in p["model"].state_dict().items()}
    with pytest.raises(ArgumentError, match=message):
        ArnoldiInfluenceFunction(
            p["model"], p["data"], None, keep, loss_fn=nn.CrossEntropyLoss(reduction="none"),
            **kwargs,
        )  # fmt: skip
    after = p["model"].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
