"""A small CNN trained in place on scikit-learn's bundled 8x8 digits, with a weight cache.

Used by the demo, the insights example and the benchmarks: no download is ever needed, the
data ship with scikit-learn and training takes a few seconds on a CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from perspicio.testing.models import ConvNet

_CACHE_VERSION = 1


@dataclass
class DigitsData:
    """Images scaled to [0, 1], shape ``(N, 1, 8, 8)``, with integer labels."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def load_digits_data(test_fraction: float = 0.25, seed: int = 0) -> DigitsData:
    """Load scikit-learn's digits as tensors with a fixed, seeded train/test split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(y) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return DigitsData(x[train], y[train], x[test], y[test])


def default_cache_dir() -> Path:
    """``$PERSPICIO_CACHE``, else ``~/.cache/perspicio``."""
    env = os.environ.get("PERSPICIO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "perspicio"


def train_digits_cnn(data: DigitsData, epochs: int = 12, seed: int = 0) -> ConvNet:
    """Train :class:`ConvNet` with Adam; deterministic for a given seed."""
    torch.manual_seed(seed)
    model = ConvNet(seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(data.y_train), generator=gen).split(64):
            opt.zero_grad()
            loss_fn(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
    return model.eval()


def digits_model(cache_dir: str | Path | None = None) -> tuple[ConvNet, DigitsData]:
    """The trained digits CNN (in eval mode, weights cached on disk) and its data."""
    data = load_digits_data()
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    weights = path / f"digits_cnn_v{_CACHE_VERSION}.pt"
    model = ConvNet()
    if weights.exists():
        try:
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            return model.eval(), data
        except (RuntimeError, OSError, ValueError):
            pass  # a stale or broken cache is retrained below
    model = train_digits_cnn(data)
    try:
        path.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), weights)
    except OSError:
        pass  # a read-only home still gets a working model
    return model, data


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())
