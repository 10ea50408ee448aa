"""The synthetic shapes data: seeded, balanced, the right geometry, object brighter than noise."""

from __future__ import annotations

import math

import torch

from perspicio.testing.shapes import SHAPES, ShapesCNN, make_shapes, shape_masks


def test_seeded_and_balanced() -> None:
    a, b, c = make_shapes(40, seed=3), make_shapes(40, seed=3), make_shapes(40, seed=4)
    assert torch.equal(a.x, b.x) and torch.equal(a.mask, b.mask)
    assert not torch.equal(a.x, c.x)
    assert torch.bincount(a.y).tolist() == [10] * len(SHAPES)
    assert a.x.shape == a.mask.shape == (40, 1, 32, 32) and a.mask.dtype == torch.bool
    sub = a[2:5]
    assert len(sub) == 3 and torch.equal(sub.x, a.x[2:5]) and torch.equal(sub.y, a.y[2:5])


def test_object_is_brighter_than_the_noise_and_inside_the_image() -> None:
    data = make_shapes(64, size=24, noise=0.3, seed=1)
    assert bool((data.x[data.mask] >= 0.6).all()) and bool((data.x[~data.mask] <= 0.3).all())
    areas = data.mask.sum((1, 2, 3))
    assert bool((areas >= 10).all())  # never clipped away by the border


def test_geometry_of_each_shape() -> None:
    r = 6.0
    centre = torch.tensor([[10.0, 12.0]])
    masks = {
        name: shape_masks(torch.tensor([i]), centre, torch.tensor([r]), 24)[0]
        for i, name in enumerate(SHAPES)
    }
    square = masks["square"]
    assert int(square.sum()) == 13 * 13 and bool(square[4:17, 6:19].all())
    assert abs(int(masks["disk"].sum()) - math.pi * r * r) < 2 * math.pi * r  # about π r²
    assert not masks["disk"][4, 6] and masks["disk"][10, 12]  # corner out, centre in
    tri = masks["triangle"]
    widths = tri.sum(1)[4:17]  # rows top to bottom
    assert int(widths[0]) == 1 and int(widths[-1]) == 13 and bool((widths.diff() >= 0).all())
    cross = masks["cross"]
    assert cross[10, 6] and cross[4, 12] and not cross[5, 7] and not cross[15, 17]
    assert bool((cross <= square).all()) and bool((tri <= square).all())


def test_model_layout() -> None:
    model = ShapesCNN()
    x = make_shapes(3).x
    assert model(x).shape == (3, len(SHAPES))
    assert model.relu3(model.conv3(model.pool2(model.relu2(model.conv2(
        model.pool1(model.relu1(model.conv1(x)))))))).shape == (3, 32, 8, 8)  # fmt: skip
