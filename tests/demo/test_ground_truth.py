"""The demo's ground-truth section: the shapes CNN learns its task, the CAMs find the object,
and the section scores every method against the masks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from perspicio import attr
from perspicio.demo import ground_truth
from perspicio.demo.methods import SHAPES, all_methods
from perspicio.metrics import pointing_game, relevance_rank_accuracy
from perspicio.testing.digits import accuracy
from perspicio.testing.shapes import ShapesCNN, ShapesData, shapes_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ShapesCNN, ShapesData]:
    return shapes_model(cache_dir=tmp_path_factory.mktemp("cache"))


def test_the_cnn_learns_the_shapes(trained: tuple[ShapesCNN, ShapesData]) -> None:
    model, data = trained
    assert accuracy(model, data.x, data.y) > 0.95


CAMS = [
    "LayerGradCam", "LayerGradCamPlusPlus", "LayerHiResCam", "LayerXGradCam", "LayerCam",
    "LayerScoreCam", "LayerAblationCam", "LayerEigenCam",
]  # fmt: skip


@pytest.mark.parametrize("name", CAMS)
def test_cams_find_the_object(trained: tuple[ShapesCNN, ShapesData], name: str) -> None:
    model, data = trained
    batch = data[:32]
    cam = getattr(attr, name)(model, model.relu3)
    kw = {} if name == "LayerEigenCam" else {"target": batch.y.tolist()}
    maps = attr.LayerAttribution.interpolate(
        cam.attribute(batch.x, relu_attributions=True, **kw), (32, 32), "bilinear"
    )
    noise = torch.rand(maps.shape, generator=torch.Generator().manual_seed(0))
    hit, rank = pointing_game(maps, batch.mask).mean(), relevance_rank_accuracy(maps, batch.mask)
    assert float(hit) > 0.6
    assert float(rank.mean()) > 3 * float(relevance_rank_accuracy(noise, batch.mask).mean())


def test_score_of_perfect_and_wrong_maps() -> None:
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[:, :, 1:3, 1:3] = True
    assert ground_truth.score(mask.float(), mask) == {
        "pointing game": 1.0, "relevance mass": 1.0, "relevance rank": 1.0,
    }  # fmt: skip
    assert set(ground_truth.score((~mask).float(), mask).values()) == {0.0}


def test_the_section_scores_every_method(
    trained: tuple[ShapesCNN, ShapesData], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ground_truth, "shapes_model", lambda: trained)
    page, rows = ground_truth.shapes_section(tmp_path, n_show=2, n_score=3)
    names = [m.name for m in all_methods(SHAPES)]
    assert [r.name for r in rows] == [*names, "random attribution (reference)"]
    assert [r.error for r in rows if r.error] == []
    for r in rows[:-1]:
        assert len(r.images) == 2 and all((tmp_path / p).exists() for p in r.images)
        assert set(r.scores) == {"pointing game", "relevance mass", "relevance rank"}
        assert all(0.0 <= v <= 1.0 for v in r.scores.values())
        assert r.name.replace("×", "&times;") in page or r.name in page
    assert (tmp_path / "shape_mask_1.png").exists() and "true mask" in page
