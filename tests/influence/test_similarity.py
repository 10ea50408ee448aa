"""SimilarityInfluence: brute-force nearest activations, the safetensors store, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from perspicio._core.validate import ArgumentError
from perspicio.influence import SimilarityInfluence
from perspicio.influence.similarity import cosine_similarity, euclidean_distance


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))


@pytest.mark.parametrize("batch_size", [1, 4, 7])
@pytest.mark.parametrize("direction", ["max", "min"])
def test_matches_brute_force(tmp_path: Path, batch_size: int, direction: str) -> None:
    m = model()
    X = torch.randn(7, 3)
    metric = cosine_similarity if direction == "max" else euclidean_distance
    sim = SimilarityInfluence(m, ["0", "2"], X, str(tmp_path), similarity_metric=metric,
                              similarity_direction=direction, batch_size=batch_size)  # fmt: skip
    out = sim.influence(X[:2], top_k=3)
    with torch.no_grad():
        acts = {"0": m[0](X), "2": m(X)}
    for layer, act in acts.items():
        if direction == "max":
            full = torch.stack(
                [torch.cosine_similarity(act[i : i + 1], act, dim=1) for i in range(2)]
            )
        else:
            full = torch.stack([(act[i] - act).norm(dim=1) for i in range(2)])
        expected = torch.topk(full, 3, dim=1, largest=direction == "max")
        assert torch.equal(out[layer][0], expected.indices)
        torch.testing.assert_close(out[layer][1], expected.values)


def test_activations_are_stored_and_reused(tmp_path: Path) -> None:
    m = model()
    X = torch.randn(6, 3)
    sim = SimilarityInfluence(m, "2", X, str(tmp_path), model_id="run1", batch_size=4)
    first = sim.influence(X[:1], top_k=2)
    path = tmp_path / "run1" / "src" / "2.safetensors"
    assert path.exists()
    from safetensors.torch import load_file

    stored = load_file(str(path))["activations"]
    with torch.no_grad():
        torch.testing.assert_close(stored, m(X))
    # stored activations are read back: changing the model changes only the test side
    with torch.no_grad():
        m[2].weight.mul_(-1)
    again = sim.influence(X[:1], top_k=2, load_src_from_disk=True)
    recomputed = sim.influence(X[:1], top_k=2, load_src_from_disk=False)
    assert not torch.equal(again["2"][1], first["2"][1]) or not torch.equal(
        again["2"][0], first["2"][0]
    )
    with torch.no_grad():
        torch.testing.assert_close(load_file(str(path))["activations"], m(X))
    assert recomputed["2"][0].shape == (1, 2)


def test_zero_activations_are_reported(tmp_path: Path) -> None:
    m = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    with torch.no_grad():
        m[0].weight.zero_()
        m[0].bias.copy_(torch.tensor([0.0, -1.0]))  # every activation is zero
    sim = SimilarityInfluence(m, ["1"], torch.randn(4, 3), str(tmp_path), batch_size=2)
    with pytest.warns(RuntimeWarning, match="zero activations"):
        out = sim.influence(torch.randn(1, 3), top_k=2)
    assert "zero_acts-1" in out and (out["1"][1] == -2).all()


def test_bad_input(tmp_path: Path) -> None:
    m = model()
    X = torch.randn(5, 3)
    with pytest.raises(
        ArgumentError, match="similarity_direction must be 'max' or 'min', got 'up'"
    ):
        SimilarityInfluence(m, "0", X, str(tmp_path), similarity_direction="up")
    with pytest.raises(ArgumentError, match="'nope' is not a module"):
        SimilarityInfluence(m, ["nope"], X, str(tmp_path))
    sim = SimilarityInfluence(m, "0", X, str(tmp_path))
    with pytest.raises(ArgumentError, match="top_k=6 is larger than the training data"):
        sim.influence(X[:1], top_k=6)
    bad = SimilarityInfluence(
        m, "0", X, str(tmp_path / "b"), similarity_metric=lambda a, b: a @ a.T
    )
    with pytest.raises(ArgumentError, match="similarity_metric returned shape"):
        bad.influence(X[:2], top_k=1)
