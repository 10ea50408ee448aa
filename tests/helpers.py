"""Small helpers shared by the tests."""

from __future__ import annotations

from typing import Any

from torch import nn


class CountingModel(nn.Module):
    """Wraps a model and counts its forward calls (to prove validation happens first)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls = 0

    def forward(self, *args: Any) -> Any:
        self.calls += 1
        return self.model(*args)
