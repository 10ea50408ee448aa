"""The influence family gives Captum's numbers (float64, 1e-4; Captum is a test oracle only)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import perspicio.influence as ours
from perspicio._core.validate import ArgumentError

captum_influence = pytest.importorskip("captum.influence")


@pytest.fixture(autouse=True)
def float64() -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    torch.set_default_dtype(old)


def close(a: Any, b: Any) -> None:
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def same_top_k(a: Any, b: Any) -> None:
    assert torch.equal(a.indices, b.indices)
    close(a.influence_scores, b.influence_scores)


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    torch.manual_seed(0)
    X, y = torch.randn(20, 3), torch.randint(0, 3, (20,))
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 3))
    paths = []
    for i, scale in enumerate((1.0, 1.2)):
        path = tmp_path / f"ckpt-{i}.pt"
        torch.save({k: v * scale for k, v in model.state_dict().items()}, path)
        paths.append(str(path))

    def load(m: nn.Module, path: str) -> float:  # Captum's default loader has no rates
        m.load_state_dict(torch.load(path, weights_only=True))
        return 0.5 if path.endswith("0.pt") else 2.0

    return dict(X=X, y=y, model=model, paths=paths, load=load, data=TensorDataset(X, y))


LOSSES = [
    dict(loss_fn=nn.CrossEntropyLoss(reduction="none")),
    dict(loss_fn=nn.CrossEntropyLoss(reduction="mean"), sample_wise_grads_per_batch=True),
    dict(loss_fn=nn.CrossEntropyLoss(reduction="sum"), sample_wise_grads_per_batch=True),
    dict(loss_fn=nn.CrossEntropyLoss(reduction="none"), layers=["2"]),
    dict(
        loss_fn=nn.CrossEntropyLoss(reduction="none"),
        test_loss_fn=nn.MultiMarginLoss(reduction="none"),
    ),
    dict(loss_fn=None),
]


@pytest.mark.parametrize("kwargs", LOSSES, ids=lambda k: str(sorted(k.items()))[:60])
def test_tracincp(setup: dict[str, Any], kwargs: dict[str, Any]) -> None:
    s = setup
    test = (s["X"][:4], s["y"][:4])
    args = (s["model"], s["data"], s["paths"], s["load"])
    a = captum_influence.TracInCP(*args, batch_size=6, **kwargs)
    b = ours.TracInCP(*args, batch_size=6, **kwargs)
    close(b.influence(test), a.influence(test))
    close(b.influence(test, aggregate=True), a.influence(test, aggregate=True))
    close(b.self_influence(), a.self_influence())
    close(b.self_influence(test), a.self_influence(test))
    close(b.compute_intermediate_quantities(test), a.compute_intermediate_quantities(test))
    loader = DataLoader(TensorDataset(*test), batch_size=3)
    close(b.compute_intermediate_quantities(loader), a.compute_intermediate_quantities(loader))
    for proponents in (True, False):
        same_top_k(
            b.influence(test, k=4, proponents=proponents),
            a.influence(test, k=4, proponents=proponents),
        )


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_tracincp_fast(setup: dict[str, Any], reduction: str) -> None:
    s = setup
    test = (s["X"][:4], s["y"][:4])
    loss = nn.CrossEntropyLoss(reduction=reduction)
    m = s["model"]
    a = captum_influence.TracInCPFast(m, m[2], s["data"], s["paths"], s["load"], loss, 6)
    b = ours.TracInCPFast(m, m[2], s["data"], s["paths"], s["load"], loss, 6)
    close(b.influence(test), a.influence(test))
    close(b.self_influence(), a.self_influence())
    same_top_k(b.influence(test, k=3, proponents=False), a.influence(test, k=3, proponents=False))


class BruteForce:
    """An exact neighbour search for Captum (its default needs annoy)."""

    def setup(self, data: torch.Tensor) -> None:
        self.data = data.reshape(len(data), -1)

    def get_nearest_neighbors(
        self, query: torch.Tensor, k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scores, idx = torch.topk(query.reshape(len(query), -1) @ self.data.T, k, dim=1)
        return idx, scores


@pytest.mark.parametrize("projection_dim", [None, 4, 9])
def test_tracincp_fast_rand_proj(setup: dict[str, Any], projection_dim: int | None) -> None:
    s = setup
    test = (s["X"][:4], s["y"][:4])
    loss = nn.CrossEntropyLoss(reduction="sum")
    m = s["model"]
    args = (m, m[2], s["data"], s["paths"], s["load"], loss, 6)
    a = captum_influence.TracInCPFastRandProj(
        *args, nearest_neighbors=BruteForce(), projection_dim=projection_dim, seed=3
    )
    b = ours.TracInCPFastRandProj(*args, projection_dim=projection_dim, seed=3)
    close(b.influence(test, k=None), a.influence(test, k=None))
    close(b.compute_intermediate_quantities(test), a.compute_intermediate_quantities(test))
    for proponents in (True, False):
        same_top_k(
            b.influence(test, k=3, proponents=proponents),
            a.influence(test, k=3, proponents=proponents),
        )


@pytest.mark.parametrize("kwargs", LOSSES[:5], ids=lambda k: str(sorted(k.items()))[:60])
def test_naive_influence_function(setup: dict[str, Any], kwargs: dict[str, Any]) -> None:
    s = setup
    test = (s["X"][:4], s["y"][:4])
    kwargs = dict(kwargs, batch_size=8, projection_dim=10)
    a = captum_influence.NaiveInfluenceFunction(s["model"], s["data"], s["paths"][0], **kwargs)
    b = ours.NaiveInfluenceFunction(s["model"], s["data"], s["paths"][0], **kwargs)
    close(b.influence(test), a.influence(test))
    close(b.self_influence(), a.self_influence())
    if "test_loss_fn" in kwargs:
        # Captum's top-k path embeds the test batch with loss_fn, its k=None path with
        # test_loss_fn; here both use test_loss_fn: the top-k of the full scores
        expected = torch.topk(a.influence(test), 3, dim=1)
        same_top_k(
            b.influence(test, k=3), type(b.influence(test, k=3))(expected.indices, expected.values)
        )
    else:
        same_top_k(b.influence(test, k=3), a.influence(test, k=3))
    # embeddings are defined up to the eigenvectors' signs; their sums of squares are not
    ea = a.compute_intermediate_quantities(test, test=True)
    close(b.compute_intermediate_quantities(test, test=True).abs(), ea.abs())


@pytest.mark.parametrize("arnoldi", [dict(arnoldi_tol=1e-8), dict(arnoldi_dim=6, projection_dim=3)])
def test_arnoldi_influence_function(setup: dict[str, Any], arnoldi: dict[str, Any]) -> None:
    from captum.influence._core.arnoldi_influence_function import ArnoldiInfluenceFunction

    s = setup
    test = (s["X"][:4], s["y"][:4])
    kwargs = dict(loss_fn=nn.CrossEntropyLoss(reduction="none"), batch_size=8, **arnoldi)
    a = ArnoldiInfluenceFunction(s["model"], s["data"], s["paths"][0], **kwargs)
    b = ours.ArnoldiInfluenceFunction(s["model"], s["data"], s["paths"][0], **kwargs)
    close(b.influence(test), a.influence(test))
    close(b.self_influence(), a.self_influence())


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_similarity_influence(tmp_path: Path, metric: str) -> None:
    from captum.influence._core import similarity_influence as theirs_module

    from perspicio.influence import similarity as ours_module

    torch.manual_seed(0)
    X = torch.randn(12, 3)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))  # no ties
    kw_a: dict[str, Any] = {}
    kw_b: dict[str, Any] = {}
    if metric == "euclidean":
        kw_a = dict(similarity_metric=theirs_module.euclidean_distance, similarity_direction="min")
        kw_b = dict(similarity_metric=ours_module.euclidean_distance, similarity_direction="min")
    a = captum_influence.SimilarityInfluence(
        model, ["0", "2"], X, str(tmp_path / "a"), batch_size=4, **kw_a
    )
    b = ours.SimilarityInfluence(model, ["0", "2"], X, str(tmp_path / "b"), batch_size=4, **kw_b)
    ra, rb = a.influence(X[:3], top_k=3), b.influence(X[:3], top_k=3)
    assert ra.keys() == rb.keys()
    for key in ra:
        assert torch.equal(ra[key][0], rb[key][0])
        close(rb[key][1], ra[key][1])
    stored = [f for _, _, files in os.walk(tmp_path / "b") for f in files]
    assert stored and all(f.endswith(".safetensors") for f in stored)


def test_reduction_rules_and_messages(setup: dict[str, Any]) -> None:
    """Both reject the same reductions; ours raise an ArgumentError (an AssertionError too)."""
    s = setup
    args = (s["model"], s["data"], s["paths"], s["load"])
    cases = [
        (
            dict(loss_fn=nn.CrossEntropyLoss(reduction="none"), sample_wise_grads_per_batch=True),
            '"sum" or "mean"',
        ),
        (dict(loss_fn=nn.CrossEntropyLoss(reduction="sum")), 'must be "none"'),
    ]
    for kwargs, message in cases:
        with pytest.raises(AssertionError, match=message):
            captum_influence.TracInCP(*args, **kwargs)
        with pytest.raises(ArgumentError, match=message):
            ours.TracInCP(*args, **kwargs)
    m = s["model"]
    for cls in ("TracInCPFast",):
        with pytest.raises(AssertionError, match='"sum" or "mean"'):
            getattr(captum_influence, cls)(
                m, m[2], s["data"], s["paths"], s["load"], nn.CrossEntropyLoss(reduction="none")
            )
        with pytest.raises(ArgumentError, match='"sum" or "mean"'):
            getattr(ours, cls)(
                m, m[2], s["data"], s["paths"], s["load"], nn.CrossEntropyLoss(reduction="none")
            )


def test_k_larger_than_the_data_differs(setup: dict[str, Any]) -> None:
    """Captum silently returns the whole ranking; perspicio says k is too large."""
    s = setup
    kwargs = dict(loss_fn=nn.CrossEntropyLoss(reduction="none"))
    args = (s["model"], s["data"], s["paths"], s["load"])
    test = (s["X"][:2], s["y"][:2])
    assert captum_influence.TracInCP(*args, **kwargs).influence(test, k=50).indices.shape == (2, 20)
    with pytest.raises(ArgumentError, match="k=50 is larger than the training data"):
        ours.TracInCP(*args, **kwargs).influence(test, k=50)


def test_exports_match() -> None:
    """Every name Captum exports exists here; Arnoldi is exported here but not by Captum."""
    assert set(captum_influence.__all__) <= set(ours.__all__)
    assert "ArnoldiInfluenceFunction" not in captum_influence.__all__
    assert "ArnoldiInfluenceFunction" in ours.__all__
