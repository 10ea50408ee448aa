"""Feature grouping, Occlusion defaults and evaluation counts for perturbation methods."""

from __future__ import annotations

import itertools

import pytest
import torch

from perspicio.insights.plan import evaluations, feature_masks, occlusion_window


def _brute_patches(h: int, w: int, side: int) -> torch.Tensor:
    ids = torch.empty(h, w, dtype=torch.long)
    for y, x in itertools.product(range(h), range(w)):
        ids[y, x] = (y // side) * -(-w // side) + x // side
    return ids


@pytest.mark.parametrize(("h", "w", "side"), [(8, 8, 2), (7, 10, 3), (224, 224, 14)])
def test_patches_match_a_brute_force_tiling(h: int, w: int, side: int) -> None:
    (mask,) = feature_masks((torch.rand(1, 3, h, w),), "patches", side)
    assert mask.shape == (1, 3, h, w)
    assert torch.equal(mask[0, 0], _brute_patches(h, w, side))
    assert torch.equal(mask[0, 0], mask[0, 2])  # channels share a feature


def test_auto_keeps_small_images_per_pixel_and_groups_large_ones() -> None:
    assert feature_masks((torch.rand(1, 1, 8, 8),), "auto", None) is None
    (mask,) = feature_masks((torch.rand(1, 3, 224, 224),), "auto", None)
    assert int(mask.max()) + 1 <= 256
    assert feature_masks((torch.rand(1, 3, 224, 224),), "pixels", None) is None


def test_superpixels_cover_the_image_with_consecutive_ids() -> None:
    image = torch.zeros(1, 3, 32, 32)
    image[:, :, :, 16:] = 1.0  # two flat halves: no superpixel should straddle the edge
    (mask,) = feature_masks((image,), "superpixels", 8)
    ids = mask[0, 0]
    assert torch.equal(torch.unique(ids), torch.arange(int(ids.max()) + 1))
    left, right = set(ids[:, :16].unique().tolist()), set(ids[:, 16:].unique().tolist())
    assert not left & right
    assert 4 <= int(ids.max()) + 1 <= 40


def test_ids_are_numbered_across_inputs_and_tokens_group_their_embedding() -> None:
    image, table, tokens = torch.rand(1, 1, 32, 32), torch.rand(1, 3), torch.rand(1, 5, 4)
    masks = feature_masks((image, table, tokens), "patches", 8)
    assert masks is not None
    assert int(masks[0].max()) == 15
    assert masks[1].tolist() == [[16, 17, 18]]
    assert torch.equal(masks[2][0, :, 0], torch.arange(19, 24))
    assert torch.equal(masks[2][0, :, 0], masks[2][0, :, 3])


def test_occlusion_defaults_and_their_cost() -> None:
    big = torch.rand(1, 3, 224, 224)
    window, stride = occlusion_window(big)
    assert window == (3, 28, 28) and stride == (3, 14, 14)
    args = {"sliding_window_shapes": (window,), "strides": (stride,)}
    assert evaluations("Occlusion", args, (big,), 1) == 1 + 15 * 15
    assert occlusion_window(torch.rand(1, 5, 4)) == ((1, 4), (1, 4))
    assert occlusion_window(torch.rand(1, 3)) == ((1,), (1,))


def test_evaluation_counts() -> None:
    x = (torch.rand(1, 3, 224, 224),)
    assert evaluations("FeatureAblation", {"feature_mask": None}, x, 1) == 1 + 3 * 224 * 224
    mask = feature_masks(x, "auto", None)
    assert evaluations("FeatureAblation", {"feature_mask": mask}, x, 1) <= 257
    assert evaluations("IntegratedGradients", {"n_steps": 20}, x, 1) == 21
    assert evaluations("NoiseTunnel", {"nt_samples": 4, "base": "Saliency"}, x, 1) == 4
    assert evaluations("DeepLiftShap", {}, x, 3) == 6
