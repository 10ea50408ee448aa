"""How much work a method does on an example, and how perturbation methods group features.

Perturbation methods cost one model evaluation per feature (FeatureAblation), per window
(Occlusion) or per sample; on a 3x224x224 image, one feature per pixel means 150,528
evaluations. The explorer therefore groups features: an image's channels always go together
and its pixels form square patches or superpixels; a sequence of vectors (embedded tokens)
is grouped per position; anything else keeps one feature per element.

:func:`evaluations` counts the model inputs (batch rows) a method pushes through the model
for one example, which with the measured time per row gives the estimate shown before a job
that would take minutes.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

Tensors = tuple[Tensor, ...]

GROUPINGS = ("auto", "pixels", "patches", "superpixels")
AUTO_MAX_FEATURES = 256  # per image: above this, "auto" groups pixels into patches
SUPERPIXEL_ITERATIONS = 8


def is_image(x: Tensor) -> bool:
    """Whether an input ``(1, C, H, W...)`` has channels and at least two spatial sides."""
    return x.dim() >= 4


def _patch_ids(shape: tuple[int, ...], side: int) -> Tensor:
    """Ids of ``side``-square patches over the spatial dims of ``(C, *spatial)``, channels shared."""
    spatial = shape[1:]
    grids = torch.meshgrid(*[torch.arange(n) // side for n in spatial], indexing="ij")
    counts = [math.ceil(n / side) for n in spatial]
    ids = torch.zeros(spatial, dtype=torch.long)
    for grid, count in zip(grids, counts):
        ids = ids * count + grid
    return ids.expand(shape[0], *spatial)


def _superpixel_ids(image: Tensor, n_segments: int) -> Tensor:
    """SLIC-like superpixels of ``(C, H, W)``: k-means on colour and position, channels shared.

    Seeds start on a regular grid; each iteration gives every pixel to the nearest centre
    (colour distance plus scaled spatial distance) and moves the centres to their pixels' mean.
    """
    channels, height, width = image.shape[0], image.shape[-2], image.shape[-1]
    colour = image.reshape(channels, -1).T.float()  # (P, C)
    colour = (colour - colour.mean(0)) / colour.std(0).clamp_min(1e-6)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    step = math.sqrt(height * width / n_segments)
    position = torch.stack([ys.reshape(-1), xs.reshape(-1)], 1).float() / step  # (P, 2)
    points = torch.cat([colour * 0.5, position], 1)
    grid = _patch_ids((1, height, width), max(1, round(step)))[0].reshape(-1)
    labels = torch.unique(grid, return_inverse=True)[1]
    for _ in range(SUPERPIXEL_ITERATIONS):
        count = int(labels.max()) + 1
        sums = torch.zeros(count, points.shape[1]).index_add_(0, labels, points)
        sizes = torch.bincount(labels, minlength=count).clamp_min(1).unsqueeze(1)
        centres = sums / sizes
        labels = torch.cdist(points, centres).argmin(1)
        labels = torch.unique(labels, return_inverse=True)[1]  # drop empty segments
    ids = labels.reshape(height, width)
    return ids.expand(image.shape)


def feature_masks(inputs: Tensors, grouping: str, patch_size: int | None) -> Tensors | None:
    """Feature masks for perturbation methods, ids numbered across all inputs, or ``None``.

    ``None`` means one feature per element everywhere (the methods' own default).
    """
    if grouping == "pixels" and not any(x.dim() == 3 for x in inputs):
        return None
    masks, offset, grouped = [], 0, False
    for x in inputs:
        shape = tuple(x.shape[1:])
        ids: Tensor
        if is_image(x) and grouping != "pixels":
            side = patch_size or _auto_side(shape)
            if grouping == "superpixels" and x.dim() == 4:
                segments = max(1, math.prod(shape[1:]) // (side * side))
                ids = _superpixel_ids(x[0].detach().cpu(), segments)
            elif grouping == "patches" or side > 1:
                ids = _patch_ids(shape, side)
            else:
                ids = torch.arange(math.prod(shape)).reshape(shape)
            grouped = grouped or grouping != "auto" or side > 1
        elif x.dim() == 3:  # (1, T, E): one feature per position (an embedded token)
            ids = torch.arange(shape[0]).unsqueeze(1).expand(shape)
            grouped = True
        else:
            ids = torch.arange(max(1, math.prod(shape))).reshape(shape)
        ids = torch.unique(ids, return_inverse=True)[1]
        masks.append((ids + offset).unsqueeze(0).to(x.device))
        offset += int(ids.max()) + 1 if ids.numel() else 0
    return tuple(masks) if grouped else None


def _auto_side(shape: tuple[int, ...]) -> int:
    """Patch side giving at most :data:`AUTO_MAX_FEATURES` patches on an image ``(C, H, W)``."""
    pixels = math.prod(shape[1:])
    return max(1, math.ceil(math.sqrt(pixels / AUTO_MAX_FEATURES)))


def occlusion_window(x: Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Default Occlusion window and stride for an input ``(1, *shape)``.

    Images: all channels, about an eighth of each side (at least 2 pixels), stride half the
    window (about 225 windows on a 224x224 image); sequences of vectors: one position; other
    inputs: one element.
    """
    shape = tuple(x.shape[1:])
    if is_image(x):
        sides = [max(1, min(n, max(2, math.ceil(n / 8)))) for n in shape[1:]]
        return (shape[0], *sides), (shape[0], *[max(1, s // 2) for s in sides])
    if x.dim() == 3:
        return (1, shape[1]), (1, shape[1])
    return (1,) * len(shape), (1,) * len(shape)


def _windows(x: Tensor, window: tuple[int, ...], stride: tuple[int, ...]) -> int:
    sides = [max(0, (n - w) // s) + 1 for n, w, s in zip(x.shape[1:], window, stride)]
    return math.prod(sides)


def _n_features(inputs: Tensors, masks: Tensors | None) -> int:
    if masks is None:
        return sum(x[0].numel() for x in inputs)
    return len(torch.unique(torch.cat([m.reshape(-1) for m in masks])))


def evaluations(name: str, args: dict[str, Any], inputs: Tensors, n_baselines: int) -> int:
    """Model inputs (rows) ``name`` evaluates for one example, forward and backward alike."""
    if name == "NoiseTunnel":
        base = dict(args)
        return int(args["nt_samples"]) * evaluations(str(base.pop("base")), {}, inputs, 1)
    if name == "IntegratedGradients":
        return int(args.get("n_steps") or 50) + 1
    if name in ("GradientShap", "Lime", "KernelShap"):
        return int(args.get("n_samples") or 50) + 1
    if name in ("DeepLift", "DeepLiftShap"):
        return 2 * max(1, n_baselines if name == "DeepLiftShap" else 1)
    if name == "Occlusion":
        windows = args["sliding_window_shapes"]
        strides = args["strides"]
        return 1 + sum(_windows(x, w, st) for x, w, st in zip(inputs, windows, strides))
    masks = args.get("feature_mask")
    if name == "FeatureAblation":
        return 1 + _n_features(inputs, masks)
    if name == "ShapleyValueSampling":
        return 1 + int(args.get("n_samples") or 25) * _n_features(inputs, masks)
    return 1


def backward_factor(name: str) -> float:
    """How many forward passes' time one evaluation of ``name`` costs (a backward pass ~2)."""
    perturbation = {"FeatureAblation", "Occlusion", "Lime", "KernelShap", "ShapleyValueSampling"}
    return 1.0 if name in perturbation else 3.0


def duration(seconds: float) -> str:
    """``seconds`` in words: "3 minutes", "2.5 hours"."""
    if seconds < 90:
        return f"{seconds:.0f} seconds"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"
