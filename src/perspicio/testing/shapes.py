"""Synthetic images with ground truth: one placed shape over noise sets the class.

Each image holds one filled shape (a square, a disk, a triangle or a cross) of random size,
brightness and position over uniform noise; its class is the shape, and its pixels are the
true object mask, so an explanation can be scored by how well it finds the object (see
:mod:`perspicio.metrics.localisation`). Everything is generated from a seed in milliseconds;
:func:`shapes_model` trains a small CNN on it in a few seconds on a CPU, and caches the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perspicio.testing.digits import default_cache_dir

SHAPES = ("square", "disk", "triangle", "cross")
_CACHE_VERSION = 1


@dataclass
class ShapesData:
    """Images ``(N, 1, size, size)`` in [0, 1], labels ``(N,)`` (an index into
    :data:`SHAPES`) and the object masks ``(N, 1, size, size)`` (bool)."""

    x: Tensor
    y: Tensor
    mask: Tensor

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, rows: slice | Tensor) -> ShapesData:
        return ShapesData(self.x[rows], self.y[rows], self.mask[rows])


def shape_masks(labels: Tensor, centers: Tensor, radii: Tensor, size: int) -> Tensor:
    """Filled shapes ``(N, size, size)`` (bool) for labels, centres ``(N, 2)`` and radii ``(N,)``.

    A square and a disk of radius ``r`` span ``2r + 1`` pixels; the triangle points up with a
    base of ``2r``; the cross is two bars of half-width ``r / 3``.
    """
    grid = torch.arange(size, dtype=torch.float32)
    dy = grid.reshape(1, size, 1) - centers[:, 0].reshape(-1, 1, 1)
    dx = grid.reshape(1, 1, size) - centers[:, 1].reshape(-1, 1, 1)
    r = radii.reshape(-1, 1, 1)
    inside = (dy.abs() <= r) & (dx.abs() <= r)
    bar = r / 3
    candidates = torch.stack(
        [
            inside,
            dy**2 + dx**2 <= r**2,
            inside & (dx.abs() <= (dy + r) / 2),
            inside & ((dy.abs() <= bar) | (dx.abs() <= bar)),
        ]
    )  # (4, N, size, size)
    return candidates[labels, torch.arange(len(labels))]


def make_shapes(n: int, size: int = 32, noise: float = 0.35, seed: int = 0) -> ShapesData:
    """``n`` images of ``size × size`` pixels, classes balanced in turn, all from ``seed``.

    Example:
        >>> from perspicio.testing.shapes import SHAPES, make_shapes
        >>> data = make_shapes(8, size=16)
        >>> data.x.shape, [SHAPES[i] for i in data.y[:4].tolist()]
        (torch.Size([8, 1, 16, 16]), ['square', 'disk', 'triangle', 'cross'])
        >>> bool((data.x[data.mask] >= 0.5).all())  # the shape is brighter than the noise
        True
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(SHAPES)
    radii = torch.randint(size // 8, size // 5 + 1, (n,), generator=g).float()
    room = (size - 1 - 2 * radii).unsqueeze(1)  # centres keep the shape inside the image
    centers = radii.unsqueeze(1) + (torch.rand(n, 2, generator=g) * (room + 1)).floor().clamp(
        max=room
    )
    masks = shape_masks(labels, centers, radii, size).unsqueeze(1)
    brightness = 0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
    background = noise * torch.rand(n, 1, size, size, generator=g)
    x = torch.where(masks, brightness, background)
    return ShapesData(x, labels, masks)


class ShapesCNN(nn.Module):
    """Three conv blocks and a global-average-pooled linear head, for ``(N, 1, 32, 32)``.

    ``relu3`` (8 × 8) is the natural layer for class activation maps.
    """

    def __init__(self, n_classes: int = len(SHAPES), seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu3 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(self.flatten(self.gap(self.relu3(self.conv3(x)))))


def train_shapes_cnn(data: ShapesData, epochs: int = 8, seed: int = 0) -> ShapesCNN:
    """Train :class:`ShapesCNN` with Adam; deterministic for a given seed."""
    torch.manual_seed(seed)
    model = ShapesCNN(seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(data), generator=gen).split(64):
            opt.zero_grad()
            F.cross_entropy(model(data.x[idx]), data.y[idx]).backward()
            opt.step()
    return model.eval()


def shapes_model(
    cache_dir: str | Path | None = None, n_train: int = 3000
) -> tuple[ShapesCNN, ShapesData]:
    """The trained shapes CNN (eval mode, weights cached on disk) and a held-out test set."""
    test = make_shapes(512, seed=1)
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    weights = path / f"shapes_cnn_v{_CACHE_VERSION}_{n_train}.pt"
    model = ShapesCNN()
    if weights.exists():
        try:
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            return model.eval(), test
        except (RuntimeError, OSError, ValueError):
            pass  # a stale or broken cache is retrained below
    model = train_shapes_cnn(make_shapes(n_train, seed=0))
    try:
        path.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), weights)
    except OSError:
        pass  # a read-only home still gets a working model
    return model, test
