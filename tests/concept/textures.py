"""Synthetic textured images and a small CNN trained on them in place (a second or two).

Class 1 images hold a patch of horizontal stripes, class 2 images a patch of dots, both on a
noisy background at a random place; class 0 images are the background alone. The CNN learns
to tell them apart from the textures (every texture has mean 0 and the same energy).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

SIZE, PATCH = 16, 8


def _zero_mean(patch: Tensor) -> Tensor:
    """Mean 0 and the same energy for every texture: only the pattern tells them apart."""
    patch = patch - patch.mean()
    return patch / patch.pow(2).mean().sqrt()


def _stripes() -> Tensor:
    return _zero_mean((torch.arange(PATCH) % 2 == 0)[:, None].float().expand(PATCH, PATCH))


def _vstripes() -> Tensor:
    return _stripes().T.contiguous()


def _dots() -> Tensor:
    grid = torch.zeros(PATCH, PATCH)
    grid[1::3, 1::3] = 1.0
    return _zero_mean(grid)


def _blob() -> Tensor:
    yy, xx = torch.meshgrid(torch.arange(PATCH), torch.arange(PATCH), indexing="ij")
    return _zero_mean((((yy - 3.5) ** 2 + (xx - 3.5) ** 2) < 9).float())


TEXTURES = {"stripes": _stripes, "vstripes": _vstripes, "dots": _dots, "blob": _blob}


def images(
    n: int, texture: str | None, g: torch.Generator, noise: float = 0.25
) -> tuple[Tensor, Tensor]:
    """``n`` images (n, 1, SIZE, SIZE) with ``texture`` planted at random, and its masks."""
    x = torch.randn(n, 1, SIZE, SIZE, generator=g) * noise
    masks = torch.zeros(n, 1, SIZE, SIZE)
    if texture is None:
        return x, masks
    patch = TEXTURES[texture]()
    corners = torch.randint(0, SIZE - PATCH + 1, (n, 2), generator=g)
    for i, (r, c) in enumerate(corners.tolist()):
        x[i, 0, r : r + PATCH, c : c + PATCH] += patch
        masks[i, 0, r : r + PATCH, c : c + PATCH] = 1.0
    return x, masks


class TextureNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        )
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def trained_net(seed: int = 0, n: int = 64, epochs: int = 25) -> TextureNet:
    """A TextureNet trained to tell noise (class 0), stripes (class 1) and dots (class 2)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.cat([images(n, texture, g)[0] for texture in (None, "stripes", "dots")])
    y = torch.arange(3).repeat_interleave(n)
    model = TextureNet()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model.eval()
