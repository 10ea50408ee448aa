"""The demo's method entries: feature groups per image size and the CAM rows on both models."""

from __future__ import annotations

import pytest
import torch

from perspicio.demo.methods import DIGITS, SHAPES, _grid, cam_methods
from perspicio.testing import ConvNet
from perspicio.testing.shapes import ShapesCNN


def test_grid_groups() -> None:
    blocks = _grid(8, 4, 4)[0, 0]  # 2x2-pixel blocks on the digits
    assert blocks.unique().tolist() == list(range(16))
    assert blocks[0, :4].tolist() == [0, 0, 1, 1] and blocks[2, 0] == 4 and blocks[7, 7] == 15
    strips = _grid(32, 4, 2)[0, 0]  # 8x16-pixel strips on the shapes
    assert strips.unique().tolist() == list(range(8))
    assert strips[0, 15] == 0 and strips[0, 16] == 1 and strips[8, 0] == 2
    assert int((strips == 5).sum()) == 8 * 16


@pytest.mark.parametrize(("spec", "model", "size"), [(DIGITS, ConvNet, 8), (SHAPES, ShapesCNN, 32)])
def test_cam_rows_give_image_sized_non_negative_maps(spec: object, model: type, size: int) -> None:
    net = model()
    x = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(0))
    rows = cam_methods(spec)  # type: ignore[arg-type]
    assert len(rows) == 8
    for row in rows:
        cam, delta = row.run(net, x, [1, 2])
        assert cam.shape == x.shape and delta is None and bool((cam >= 0).all()), row.name
