"""Random-initialised benchmark models: a ResNet-18, a small text transformer, a tabular MLP.

Each model can also be run in stages (``run(x, start, stop)``), which the floors use to feed
a layer's values straight into the rest of the network without any hook.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection, as in torchvision's ResNet-18.

    With ``separate_relus=False`` one in-place ReLU module is applied twice (torchvision's
    layout); with ``True`` each use has its own non-in-place ReLU (same function), which
    Captum's DeepLift needs.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, separate_relus: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=not separate_relus)
        self.relu2 = nn.ReLU() if separate_relus else self.relu
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + skip)


class ResNet18(nn.Module):
    """ResNet-18: BasicBlock x [2, 2, 2, 2], 64-128-256-512 channels, 1000 classes, eval mode.

    Stages for ``run``: 0 stem, 1-4 ``layer1``-``layer4``, 5 the pooled classifier.
    """

    def __init__(self, separate_relus: bool = False, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=not separate_relus)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers = []
        c_in = 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(
                nn.Sequential(
                    BasicBlock(c_in, c_out, stride, separate_relus),
                    BasicBlock(c_out, c_out, 1, separate_relus),
                )
            )
            c_in = c_out
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, 1000)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.eval()

    def _stages(self) -> list[nn.Module | None]:
        return [None, self.layer1, self.layer2, self.layer3, self.layer4, None]

    def run(self, x: Tensor, start: int = 0, stop: int = 6) -> Tensor:
        """The network from stage ``start`` (inclusive) to ``stop`` (exclusive)."""
        for i, stage in enumerate(self._stages()):
            if not start <= i < stop:
                continue
            if i == 0:
                x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            elif stage is None:
                x = self.fc(torch.flatten(self.avgpool(x), 1))
            else:
                x = stage(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x)


def resnet18_pair(seed: int = 0) -> tuple[ResNet18, ResNet18]:
    """The torchvision-style ResNet-18 and its separate-ReLU twin with the same weights."""
    reused = ResNet18(separate_relus=False, seed=seed)
    separate = ResNet18(separate_relus=True, seed=seed)
    separate.load_state_dict(reused.state_dict())
    return reused, separate


class TextClassifier(nn.Module):
    """Token embedding + learned positions + 2 transformer encoder layers + mean-pool head."""

    def __init__(
        self,
        vocab: int = 1000,
        d_model: int = 128,
        n_heads: int = 4,
        d_ff: int = 256,
        n_layers: int = 2,
        seq_len: int = 64,
        n_classes: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embedding = nn.Embedding(vocab, d_model)
        self.position = nn.Parameter(torch.randn(seq_len, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.classifier = nn.Linear(d_model, n_classes)
        self.eval()

    def head(self, embedded: Tensor) -> Tensor:
        """Everything after the embedding layer: ``(N, L, d_model) -> (N, n_classes)``."""
        hidden = self.encoder(embedded + self.position[: embedded.shape[1]])
        return self.classifier(hidden.mean(dim=1))

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.embedding(tokens))


class TabularMLP(nn.Module):
    """``100 -> 256 -> 256 -> 10`` with ReLUs."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Linear(100, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, 10),
        )
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
