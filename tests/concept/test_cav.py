"""CAV files: safetensors with JSON metadata, a round trip, Captum's path scheme."""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch

from perspicio.concept import CAV, Concept, store


def test_round_trip_without_pickle(tmp_path) -> None:
    concepts = [Concept(4, "striped", None), Concept(1, "random_1", None)]
    stats = {
        "weights": torch.randn(2, 5),
        "classes": [1, 4],
        "accs": torch.tensor(0.75),
        "note": "x",
    }
    CAV.create_cav_dir_if_missing(str(tmp_path), "net")
    CAV(concepts, "layer1.conv", stats, str(tmp_path), "net").save()
    path = CAV.assemble_save_path(str(tmp_path), "net", concepts, "layer1.conv")
    assert path == os.path.join(str(tmp_path), "net", "4-1-layer1.conv.safetensors")
    # a safetensors file: an 8-byte header length, then a JSON header
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    meta = json.loads(header["__metadata__"]["perspicio"])
    assert meta["concept_ids"] == [4, 1] and meta["layer"] == "layer1.conv"
    loaded = CAV.load(str(tmp_path), "net", concepts, "layer1.conv")
    assert loaded is not None and loaded.layer == "layer1.conv"
    assert [(c.id, c.name) for c in loaded.concepts] == [(4, "striped"), (1, "random_1")]
    assert torch.equal(loaded.stats["weights"], stats["weights"])
    assert loaded.stats["classes"] == [1, 4] and loaded.stats["note"] == "x"
    assert float(loaded.stats["accs"]) == 0.75
    assert CAV.load(str(tmp_path), "net", concepts[::-1], "layer1.conv") is None


def test_unstorable_statistic(tmp_path) -> None:
    cav = CAV(
        [Concept(0, "a", None)],
        "l",
        {"weights": torch.ones(1, 1), "bad": object()},
        str(tmp_path),
        "m",
    )
    with pytest.raises(TypeError, match="cannot be stored"):
        cav.save()


@pytest.mark.parametrize("pooling", ["flatten", "mean"])
def test_pooling_of_activations_and_attributions(pooling: str) -> None:
    act = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = store.pool(act, pooling, mask)
    summed = store.pool(act, pooling, mask, grads=True)
    if pooling == "flatten":
        assert torch.equal(pooled, act.reshape(2, 12)) and torch.equal(summed, pooled)
    else:
        torch.testing.assert_close(pooled[0], act[0, :2].mean(0))
        torch.testing.assert_close(pooled[1], act[1].mean(0))
        torch.testing.assert_close(summed[0], act[0, :2].sum(0))
        # images: the mean over every position, channels last
        img = torch.randn(2, 5, 3, 3)
        torch.testing.assert_close(store.pool(img, "mean"), img.reshape(2, -1, 3).mean(1))
