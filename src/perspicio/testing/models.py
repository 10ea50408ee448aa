"""Small, seeded PyTorch models used across tests, doctests and benchmarks."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


class BasicLinearModel(nn.Module):
    """``y = x @ W.T + b``: closed forms for every attribution method are known."""

    def __init__(self, in_features: int = 4, out_features: int = 3, seed: int = 0) -> None:
        super().__init__()
        _seeded(seed)
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


class ReLUMLP(nn.Module):
    """A bias-carrying ReLU network: ``in -> hidden -> hidden -> out``."""

    def __init__(
        self, in_features: int = 6, hidden: int = 8, out_features: int = 3, seed: int = 0
    ) -> None:
        super().__init__()
        _seeded(seed)
        self.fc1 = nn.Linear(in_features, hidden)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, hidden)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(hidden, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(x)))))


class ReusedReLUNet(nn.Module):
    """One ReLU module applied twice, as torchvision's ResNet blocks do."""

    def __init__(self, in_features: int = 5, hidden: int = 7, seed: int = 0) -> None:
        super().__init__()
        _seeded(seed)
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))


class MultiInputModel(nn.Module):
    """Two tensor inputs and an optional extra forward argument (a per-example scale)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        _seeded(seed)
        self.fa = nn.Linear(4, 6)
        self.fb = nn.Linear(3, 6)
        self.act = nn.Tanh()
        self.out = nn.Linear(6, 3)

    def forward(self, a: Tensor, b: Tensor, scale: Tensor | None = None) -> Tensor:
        h = self.act(self.fa(a) + self.fb(b))
        if scale is not None:
            h = h * scale.reshape(-1, 1)
        return self.out(h)


class ConvNet(nn.Module):
    """A small CNN for ``(N, 1, 8, 8)`` images (the size of scikit-learn's digits)."""

    def __init__(self, n_classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        _seeded(seed)
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * 4 * 4, 64)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(64, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))


class _Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class TinyResNet(nn.Module):
    """A torchvision-style residual network (reused in-place ReLU, BatchNorm, skip additions)."""

    def __init__(self, in_channels: int = 3, n_classes: int = 5, width: int = 8, seed: int = 0):
        super().__init__()
        _seeded(seed)
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _Block(width)
        self.layer2 = _Block(width)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, n_classes)
        for m in self.modules():  # non-trivial BatchNorm statistics
            if isinstance(m, nn.BatchNorm2d):
                with torch.no_grad():
                    m.running_mean.uniform_(-0.2, 0.2)  # type: ignore[union-attr]
                    m.running_var.uniform_(0.5, 1.5)  # type: ignore[union-attr]
                nn.init.uniform_(m.weight, 0.5, 1.5)
                nn.init.uniform_(m.bias, -0.2, 0.2)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))
