"""TracInCPFast equals TracInCP on the last layer; projections keep the top-k; neighbours."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from perspicio._core.validate import ArgumentError
from perspicio.influence import (
    TorchNearestNeighbors,
    TracInCP,
    TracInCPFast,
    TracInCPFastRandProj,
)

pytestmark = pytest.mark.usefixtures("float64")


def rates(model: nn.Module) -> tuple[list[Any], Any]:
    states = [{k: v * s for k, v in model.state_dict().items()} for s in (1.0, 0.7)]
    lrs = {0: 0.3, 1: 1.5}

    def load(m: nn.Module, state: dict[str, torch.Tensor]) -> float:
        m.load_state_dict(state)
        return lrs[next(i for i, s in enumerate(states) if s is state)]

    return states, load


@pytest.fixture
def problem() -> dict[str, Any]:
    torch.manual_seed(0)
    X, y = torch.randn(11, 4), torch.randint(0, 3, (11,))
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3, bias=False))
    states, load = rates(model)
    return dict(X=X, y=y, model=model, data=TensorDataset(X, y), states=states, load=load)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_fast_equals_tracincp_on_the_last_layer(problem: dict[str, Any], reduction: str) -> None:
    p = problem
    m = p["model"]
    loss = nn.CrossEntropyLoss(reduction=reduction)
    fast = TracInCPFast(m, m[2], p["data"], p["states"], p["load"], loss, batch_size=4)
    full = TracInCP(m, p["data"], p["states"], p["load"], layers=[m[2]], loss_fn=loss,
                    batch_size=3, sample_wise_grads_per_batch=True)  # fmt: skip
    test = (p["X"][:3], p["y"][:3])
    torch.testing.assert_close(fast.influence(test), full.influence(test))
    torch.testing.assert_close(fast.self_influence(), full.self_influence())
    torch.testing.assert_close(fast.self_influence(test), full.self_influence(test))
    a, b = fast.influence(test, k=4), full.influence(test, k=4)
    assert torch.equal(a.indices, b.indices)


def test_rand_proj_without_projection_is_exact(problem: dict[str, Any]) -> None:
    p = problem
    m = p["model"]
    loss = nn.CrossEntropyLoss(reduction="sum")
    fast = TracInCPFast(m, "2", p["data"], p["states"], p["load"], loss, batch_size=4)
    proj = TracInCPFastRandProj(m, "2", p["data"], p["states"], p["load"], loss, batch_size=4)
    test = (p["X"][:3], p["y"][:3])
    torch.testing.assert_close(proj.influence(test, k=None), fast.influence(test))
    torch.testing.assert_close(proj.self_influence(), fast.self_influence())
    torch.testing.assert_close(proj.self_influence(test), fast.self_influence(test))
    for proponents in (True, False):
        a, b = (
            proj.influence(test, k=3, proponents=proponents),
            fast.influence(test, k=3, proponents=proponents),
        )
        assert torch.equal(a.indices, b.indices)
        torch.testing.assert_close(a.influence_scores, b.influence_scores)


def test_projection_keeps_the_top_k_on_a_known_case() -> None:
    """Five well-separated clusters: a test point's top-6 are its cluster's six members.

    The last layer maps 40 features to 10 classes (400 weights per checkpoint); the projection
    keeps 10 x 15 = 150 of them (``projection_dim=225``: at most 15 per side). Inner products within a cluster are large and across clusters
    near zero, and a Gaussian projection (Johnson-Lindenstrauss) distorts both only by a
    fraction of the norms: the ranking of the top group survives.
    """
    gen = torch.Generator().manual_seed(0)
    centers = 6 * torch.linalg.qr(torch.randn(40, 5, generator=gen))[0].T  # orthogonal rows
    labels = torch.arange(5).repeat_interleave(6)
    X = centers[labels] + 0.05 * torch.randn(30, 40, generator=gen)
    test = (centers + 0.05 * torch.randn(5, 40, generator=gen), torch.arange(5))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 10))
    loss = nn.CrossEntropyLoss(reduction="sum")
    states, load = rates(model)
    data = TensorDataset(X, labels)
    exact = TracInCPFast(model, model[0], data, states, load, loss, batch_size=16)
    proj = TracInCPFastRandProj(
        model, model[0], data, states, load, loss, batch_size=16, projection_dim=225
    )
    assert proj.src_intermediate_quantities.shape == (30, 2 * 150)
    members = torch.arange(30).reshape(5, 6)
    for method in (exact, proj):
        top = method.influence(test, k=6).indices.sort(dim=1).values
        assert torch.equal(top, members)
    # self influence is approximated within the projection's distortion
    ratio = proj.self_influence() / exact.self_influence()
    assert (ratio - 1).abs().median() < 0.5


@pytest.mark.parametrize("block_rows", [1, 3, 1000])
def test_torch_nearest_neighbors_is_exact(block_rows: int) -> None:
    torch.manual_seed(0)
    data, query = torch.randn(17, 2, 3), torch.randn(4, 6)
    nn_ = TorchNearestNeighbors(use_faiss=False, block_rows=block_rows)
    nn_.setup(data)
    idx, scores = nn_.get_nearest_neighbors(query, 5)
    expected = torch.topk(query @ data.reshape(17, -1).T, 5, dim=1)
    assert torch.equal(idx, expected.indices)
    torch.testing.assert_close(scores, expected.values)


def test_faiss_search_when_installed() -> None:
    pytest.importorskip("faiss")
    torch.manual_seed(0)
    data, query = torch.randn(30, 5), torch.randn(3, 5)
    nn_ = TorchNearestNeighbors(use_faiss=True)
    nn_.setup(data)
    idx, _ = nn_.get_nearest_neighbors(query, 4)
    assert torch.equal(idx, torch.topk(query @ data.T, 4, dim=1).indices)


def test_bad_input(problem: dict[str, Any]) -> None:
    p = problem
    m = p["model"]
    loss = nn.CrossEntropyLoss(reduction="sum")
    args = (p["data"], p["states"], p["load"])
    with pytest.raises(ArgumentError, match="final_fc_layer Linear is not a submodule"):
        TracInCPFast(m, nn.Linear(6, 3), *args, loss)
    with pytest.raises(ArgumentError, match="final_fc_layer\\[0\\] 'nope'"):
        TracInCPFast(m, "nope", *args, loss)
    with pytest.raises(ArgumentError, match="loss_fn must not be None"):
        TracInCPFast(m, m[2], *args)
    with pytest.raises(ArgumentError, match='"sum" or "mean"'):
        TracInCPFast(m, m[2], *args, nn.CrossEntropyLoss(reduction="none"))
    with pytest.raises(ArgumentError, match="projection_dim must be a positive int"):
        TracInCPFastRandProj(m, m[2], *args, loss, projection_dim=0)
    with pytest.raises(TypeError, match="nearest_neighbors must have"):
        TracInCPFastRandProj(m, m[2], *args, loss, nearest_neighbors=object())  # type: ignore[arg-type]
    proj = TracInCPFastRandProj(m, m[2], *args, loss)
    with pytest.raises(ArgumentError, match="inputs is required"):
        proj.influence()
    with pytest.raises(ArgumentError, match="k=12 is larger"):
        proj.influence((p["X"][:1], p["y"][:1]), k=12)
