from __future__ import annotations

import torch

from perspicio.attr import Deconvolution, GuidedBackprop
from perspicio.testing import ReLUMLP, ReusedReLUNet


def manual(model: ReLUMLP, x: torch.Tensor, target: int, guided: bool) -> torch.Tensor:
    """Backpropagate by hand through fc3, relu2, fc2, relu1, fc1."""
    h1 = model.fc1(x)
    h2 = model.fc2(torch.relu(h1))
    g = model.fc3.weight[target].expand(len(x), -1)
    g = torch.relu(g) * (h2 > 0) if guided else torch.relu(g)
    g = g @ model.fc2.weight
    g = torch.relu(g) * (h1 > 0) if guided else torch.relu(g)
    return (g @ model.fc1.weight).detach()


def test_guided_backprop_by_hand() -> None:
    model = ReLUMLP()
    x = torch.randn(4, 6)
    torch.testing.assert_close(
        GuidedBackprop(model).attribute(x, target=2), manual(model, x, 2, True)
    )


def test_deconvolution_by_hand() -> None:
    model = ReLUMLP()
    x = torch.randn(4, 6)
    torch.testing.assert_close(
        Deconvolution(model).attribute(x, target=0), manual(model, x, 0, False)
    )


def test_reused_inplace_relu() -> None:
    model = ReusedReLUNet()
    x = torch.randn(3, 5)
    h1 = model.fc1(x)
    h2 = model.fc2(torch.relu(h1))
    g = torch.relu(model.fc3.weight[1].expand(3, -1)) * (h2 > 0)
    g = torch.relu(g @ model.fc2.weight) * (h1 > 0)
    torch.testing.assert_close(
        GuidedBackprop(model).attribute(x, target=1), (g @ model.fc1.weight).detach()
    )
