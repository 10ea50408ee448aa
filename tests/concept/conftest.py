"""Shared fixtures: one texture CNN trained per test session (a few seconds)."""

from __future__ import annotations

import pytest
import torch

from perspicio.concept import Concept
from tests.concept.textures import TextureNet, images, trained_net


@pytest.fixture(scope="session")
def texture_net() -> TextureNet:
    return trained_net(epochs=30)


def texture_concept(id: int, name: str, texture: str | None, seed: int, n: int = 30) -> Concept:
    g = torch.Generator().manual_seed(seed)
    return Concept(id, name, [images(n, texture, g)[0]])


@pytest.fixture(scope="session")
def concepts() -> dict[str, object]:
    """A stripes concept, an unrelated one (background only) and ten random concepts."""
    return {
        "stripes": texture_concept(0, "stripes", "stripes", 100),
        "unrelated": texture_concept(1, "unrelated", None, 101),
        "randoms": [texture_concept(10 + i, f"random_{i}", None, 200 + i) for i in range(10)],
    }


@pytest.fixture(scope="session")
def striped_inputs() -> torch.Tensor:
    return images(50, "stripes", torch.Generator().manual_seed(7))[0]
