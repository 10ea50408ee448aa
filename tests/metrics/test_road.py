"""ROAD: the imputation against a dense direct solve, the curve, batching and bad input."""

from __future__ import annotations

import doctest
import importlib
from typing import Any

import pytest
import torch

from perspicio.metrics import road
from perspicio.metrics.road import noisy_linear_impute
from perspicio.testing import ConvNet
from tests.helpers import CountingModel

NEIGHBOURS = {
    (-1, -1): 1 / 12,
    (-1, 0): 1 / 6,
    (-1, 1): 1 / 12,
    (0, -1): 1 / 6,
    (0, 1): 1 / 6,
    (1, -1): 1 / 12,
    (1, 0): 1 / 6,
    (1, 1): 1 / 12,
}
IMG = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def test_docstring_examples() -> None:
    assert doctest.testmod(importlib.import_module("perspicio.metrics.road")).failed == 0


def dense_reference(img: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """Rong et al.'s linear system built entry by entry and solved directly (float64)."""
    c, h, w = img.shape
    holes = [(i, j) for i in range(h) for j in range(w) if removed[i, j]]
    index = {p: k for k, p in enumerate(holes)}
    a = torch.zeros(len(holes), len(holes), dtype=torch.float64)
    b = torch.zeros(len(holes), c, dtype=torch.float64)
    for k, (i, j) in enumerate(holes):
        for (di, dj), weight in NEIGHBOURS.items():
            q = (i + di, j + dj)
            if not (0 <= q[0] < h and 0 <= q[1] < w):
                continue
            a[k, k] += weight
            if removed[q]:
                a[k, index[q]] -= weight
            else:
                b[k] += weight * img[:, q[0], q[1]].double()
    values = torch.linalg.solve(a, b)
    out = img.double().clone()
    for k, (i, j) in enumerate(holes):
        out[:, i, j] = values[k]
    return out


@pytest.mark.parametrize("size", [(7, 9), (18, 21)])
def test_imputation_solves_the_linear_system(size: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(1)
    img = torch.rand(3, 2, *size, generator=g)
    removed = torch.rand(3, 1, *size, generator=g) < 0.6
    removed[2, 0, 2:14, 1:6] = True  # a large hole
    out = noisy_linear_impute(img.double(), removed, noise=0.0, tol=1e-10)
    for i in range(3):
        torch.testing.assert_close(
            out[i], dense_reference(img[i], removed[i, 0]), atol=1e-7, rtol=0
        )


def test_kept_pixels_are_untouched_and_noise_has_the_given_scale() -> None:
    img = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    removed = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(3)) < 0.5
    clean = noisy_linear_impute(img, removed, noise=0.0)
    torch.manual_seed(0)
    noisy = noisy_linear_impute(img, removed, noise=0.05)
    keep = ~removed.expand_as(img)
    assert torch.equal(noisy[keep], img[keep]) and torch.equal(clean[keep], img[keep])
    residual = (noisy - clean)[~keep]
    assert abs(float(residual.std()) - 0.05) < 0.005 and abs(float(residual.mean())) < 0.005


def test_a_constant_image_is_imputed_constant() -> None:
    img = torch.full((1, 2, 10, 10), 0.7)
    removed = torch.zeros(1, 1, 10, 10, dtype=torch.bool)
    removed[..., 2:8, 3:9] = True
    torch.testing.assert_close(noisy_linear_impute(img, removed, noise=0.0), img)


def test_curve_shape_and_order() -> None:
    model = ConvNet()
    curve = road(model, IMG, IMG, target=1, fractions=(0.2, 0.5, 0.8))
    assert curve.scores.shape == (2, 3) and curve.auc.shape == (2,)
    torch.testing.assert_close(curve.fractions, torch.tensor([0.2, 0.5, 0.8]))
    torch.testing.assert_close(curve.auc, torch.trapezoid(curve.scores, curve.fractions, dim=1))


def test_noise_free_imputation_of_a_constant_image_keeps_the_score() -> None:
    model = ConvNet()
    flat = torch.full((1, 1, 8, 8), 0.5)
    relevance = torch.rand(1, 1, 8, 8)
    morf = road(model, flat, relevance, target=0, fractions=(0.25,), noise=0.0)
    lerf = road(model, flat, relevance, target=0, fractions=(0.75,), order="lerf", noise=0.0)
    with torch.no_grad():
        torch.testing.assert_close(morf.scores[0, 0], model(flat)[0, 0])
    torch.testing.assert_close(morf.scores, lerf.scores)


def test_channel_attributions_are_summed_per_pixel() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 8 * 8, 3))
    x = torch.rand(2, 2, 8, 8)
    per_channel = torch.rand(2, 2, 8, 8)
    a = road(model, x, per_channel, target=0, noise=0.0)
    b = road(model, x, per_channel.sum(1, keepdim=True), target=0, noise=0.0)
    torch.testing.assert_close(a.scores, b.scores)


@pytest.mark.parametrize("mepb", [1, 4])
def test_chunk_invariance_and_seeds(mepb: int) -> None:
    model = ConvNet()
    mask = (torch.arange(64).reshape(1, 1, 8, 8) // 8) % 4  # 4 striped superpixels
    runs = []
    for knob in (None, mepb):
        torch.manual_seed(3)
        runs.append(
            road(
                model,
                IMG,
                IMG,
                target=2,
                fractions=(0.25, 0.5, 0.75),
                feature_mask=mask,
                max_examples_per_batch=knob,
            ).scores
        )
    torch.testing.assert_close(runs[0], runs[1], atol=1e-5, rtol=1e-4)


BAD = [
    (
        {"inputs": torch.rand(2, 64)},
        ValueError,
        r"road needs one image tensor of shape \(N, C, H, W\)",
    ),
    ({"inputs": (IMG,)}, ValueError, "road needs one image tensor"),
    (
        {"attributions": torch.rand(2, 1, 8, 7)},
        ValueError,
        r"attributions has shape \(2, 1, 8, 7\)",
    ),
    ({"attributions": [IMG]}, TypeError, "attributions must be a tensor"),
    ({"fractions": (0.5, 1.5)}, ValueError, "fractions must be a non-empty sequence of numbers in"),
    ({"fractions": ()}, ValueError, "fractions must be a non-empty sequence"),
    ({"order": "up"}, ValueError, "order must be 'morf'"),
    ({"max_examples_per_batch": 0}, ValueError, "max_examples_per_batch must be at least 1"),
]


@pytest.mark.parametrize(("override", "error", "message"), BAD)
def test_bad_input(override: dict[str, Any], error: type, message: str) -> None:
    model = CountingModel(ConvNet())
    kwargs: dict[str, Any] = {"inputs": IMG, "attributions": IMG, "target": 0, **override}
    with pytest.raises(error, match=message):
        road(model, **kwargs)
    assert model.calls == 0
