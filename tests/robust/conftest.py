"""Models shared by the robust tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio.testing.digits import DigitsData, load_digits_data, train_digits_cnn


class Linear(nn.Module):
    """``x @ W.T``: the gradient of output ``t`` is ``W[t]`` everywhere."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T


def pick(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A loss whose gradient is the weight row of each example's label."""
    return out.gather(1, t[:, None])[:, 0]


@pytest.fixture(scope="session")
def digits() -> tuple[nn.Module, DigitsData]:
    """The digits CNN trained in place (a few seconds), in eval mode."""
    data = load_digits_data()
    return train_digits_cnn(data, epochs=12), data
