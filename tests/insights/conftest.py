"""Small explorers for the insights tests: an image classifier pair and a multimodal model."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from perspicio.insights import AttributionVisualizer, Batch
from perspicio.insights.features import GeneralFeature, ImageFeature, TextFeature
from perspicio.testing.models import ConvNet

with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore")  # starlette's notice about its httpx-based client, once
    import fastapi.testclient  # noqa: F401

VOCAB = ["<pad>", "good", "bad", "<b>bold</b>", "plot", "&amp;", "film", "boring"]
EMBED = nn.Embedding(len(VOCAB), 4)
with torch.no_grad():
    EMBED.weight.copy_(torch.randn(len(VOCAB), 4, generator=torch.Generator().manual_seed(3)))


class Multimodal(nn.Module):
    """Image (N,1,8,8) + tabular (N,3) + embedded text (N,T,4) + a per-example scale."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.img = nn.Linear(2 * 64, 3)
        self.tab = nn.Linear(3, 3)
        self.txt = nn.Linear(4, 3)

    def forward(self, image: Tensor, table: Tensor, text: Tensor, scale: Tensor) -> Tensor:
        h = self.img(torch.relu(self.conv(image)).flatten(1))
        return (h + self.tab(table) + self.txt(text).mean(1)) * scale.reshape(-1, 1)


def image_dataset(n: int = 24, batch: int = 8, seed: int = 0) -> list[Batch]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return [Batch(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


def image_visualizer(n_models: int = 2, n: int = 24) -> AttributionVisualizer:
    models = [ConvNet(seed=s).eval() for s in range(n_models)]
    return AttributionVisualizer(
        models=models,
        classes=[f"digit {d}" for d in range(10)],
        features=[ImageFeature("Photo", [torch.zeros_like], [])],
        dataset=image_dataset(n),
        score_func=lambda out: out.softmax(-1),
    )


def multimodal_visualizer(classes: list[str] | None = None) -> AttributionVisualizer:
    gen = torch.Generator().manual_seed(5)
    n = 6
    image = torch.rand(n, 1, 8, 8, generator=gen)
    table = torch.rand(n, 3, generator=gen)
    ids = torch.randint(1, len(VOCAB), (n, 5), generator=gen)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    scale = torch.full((n,), 2.0)

    def embed(x: Tensor) -> Tensor:
        with torch.no_grad():
            return EMBED(x)

    features = [
        ImageFeature("Image", [torch.zeros_like, lambda x: torch.full_like(x, 0.5)], None),
        GeneralFeature("Table", ["age", "<i>height</i>", "weight"]),
        TextFeature("Review", None, [embed], lambda t: [VOCAB[int(i)] for i in t]),
    ]
    data = [
        Batch((image[:3], table[:3], ids[:3]), labels[:3], scale[:3]),
        Batch((image[3:], table[3:], ids[3:]), labels[3:], (scale[3:],)),
    ]
    return AttributionVisualizer(
        Multimodal().eval(),
        classes or ["negative", "neutral", "positive"],
        features,
        data,
        score_func=lambda out: out.softmax(-1),
        use_label_for_attr=False,
    )


@pytest.fixture
def vis() -> AttributionVisualizer:
    return image_visualizer()


@pytest.fixture
def client(vis: AttributionVisualizer) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from perspicio.insights.server import create_app

    with TestClient(create_app(vis.engine)) as c:
        yield c


@pytest.fixture
def multimodal_client() -> Iterator[object]:
    from fastapi.testclient import TestClient

    from perspicio.insights.server import create_app

    with TestClient(create_app(multimodal_visualizer().engine)) as c:
        yield c
