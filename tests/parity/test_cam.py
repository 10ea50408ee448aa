"""The CAM family gives the numbers of the ``grad-cam`` package (pytorch-grad-cam), used here as
a test oracle only.

grad-cam imports torchvision at the top of two modules (for image helpers these tests do not
use). Where torchvision is missing (this project's CPU-only environment has no matching
build), a stand-in module is put in ``sys.modules`` just for that import and removed again.

grad-cam returns maps that are ReLU'd, resized to the input and scaled to [0, 1]; these tests
compare the raw layer maps, before that post-processing (its ``get_cam_image``), with ours
(``relu_attributions=False``). The layer keeps the input's spatial size, so Score-CAM's
upsampling is the identity in both.
"""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from perspicio import attr


def _import_grad_cam() -> tuple[Any, Any]:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        pass
    else:
        return (
            pytest.importorskip("pytorch_grad_cam"),
            pytest.importorskip("pytorch_grad_cam.utils.model_targets"),
        )
    names = ["torchvision", "torchvision.transforms", "torchvision.transforms.functional"]

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("torchvision is not installed")

    for name in names:
        stub = types.ModuleType(name)
        for attr_name in ("Compose", "Normalize", "ToTensor", "resize"):
            setattr(stub, attr_name, unavailable)
        sys.modules[name] = stub
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]  # type: ignore[attr-defined]
    try:
        return (
            pytest.importorskip("pytorch_grad_cam"),
            pytest.importorskip("pytorch_grad_cam.utils.model_targets"),
        )
    finally:
        for name in names:
            del sys.modules[name]


pgc, targets_mod = _import_grad_cam()


class FlatNet(nn.Module):
    """conv -> ReLU -> conv -> ReLU (the CAM layer, input-sized) -> flatten -> linear."""

    def __init__(self, scale: float = 20.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(8 * 6 * 6, 4)
        with torch.no_grad():  # large gradients keep grad-cam's epsilons negligible
            self.fc.weight.mul_(scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.relu2(self.conv2(self.relu1(self.conv1(x)))).flatten(1))


class TinyViT(nn.Module):
    """Patch embedding, a class token, one mixing layer over tokens and a class-token head."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patch = nn.Conv2d(3, 8, 2, stride=2)  # 8x8 image -> 4x4 patches
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.mix = nn.Linear(17, 17)
        self.block = nn.Sequential(nn.Linear(8, 8), nn.GELU())
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 3)
        with torch.no_grad():
            self.head.weight.mul_(scale)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # (N, 16, 8)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1)
        tokens = self.norm(self.block(self.mix(tokens.transpose(1, 2)).transpose(1, 2)))
        return self.head(tokens[:, 0] + tokens[:, 1:].mean(1))


X = torch.rand(3, 3, 6, 6, generator=torch.Generator().manual_seed(0))
X_VIT = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
TARGETS = [0, 2, 3]


def theirs(cls_name: str, model: nn.Module, layer: nn.Module, x: Tensor, targets: list[int],
           **ctor: Any) -> Tensor:  # fmt: skip
    """grad-cam's raw map ``(N, H, W)`` (before its ReLU, resizing and scaling)."""
    cam = getattr(pgc, cls_name)(model=model, target_layers=[layer], **ctor)
    tg = [targets_mod.ClassifierOutputTarget(t) for t in targets]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outputs = cam.activations_and_grads(x)
            grads = None
            if cam.uses_gradients:
                sum(t(o) for t, o in zip(tg, outputs)).backward()
                grads = cam.activations_and_grads.gradients[0].numpy()
            acts = cam.activations_and_grads.activations[0].numpy()
            raw = cam.get_cam_image(x, layer, tg, acts, grads, False)
    finally:
        cam.activations_and_grads.release()
    return torch.as_tensor(np.asarray(raw, dtype=np.float32))


GRADIENT = [
    ("GradCAM", "LayerGradCam"),
    ("GradCAMPlusPlus", "LayerGradCamPlusPlus"),
    ("HiResCAM", "LayerHiResCam"),
    ("XGradCAM", "LayerXGradCam"),
    ("LayerCAM", "LayerCam"),
]


@pytest.mark.parametrize(("their_name", "our_name"), [*GRADIENT, ("ScoreCAM", "LayerScoreCam"),
                                                      ("AblationCAM", "LayerAblationCam")])  # fmt: skip
def test_same_maps_as_grad_cam(their_name: str, our_name: str) -> None:
    # grad-cam's Grad-CAM++ adds 1e-6 to the denominator of alpha (ours divides exactly):
    # with gradients of order 10-100 that changes its maps by less than 1e-6 relative
    scale = 1000.0 if our_name == "LayerGradCamPlusPlus" else 20.0
    a, b = FlatNet(scale), FlatNet(scale)  # grad-cam's AblationCAM swaps the layer out
    ours = getattr(attr, our_name)(a, a.relu2).attribute(X, TARGETS)
    expected = theirs(their_name, b, b.relu2, X, TARGETS)
    torch.testing.assert_close(ours[:, 0], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("per_eval", [1, 3])
def test_score_and_ablation_cam_in_chunks(per_eval: int) -> None:
    a, b = FlatNet(), FlatNet()
    kw = {"perturbations_per_eval": per_eval}
    got = attr.LayerScoreCam(a, a.relu2).attribute(X, TARGETS, **kw)
    torch.testing.assert_close(got[:, 0], theirs("ScoreCAM", b, b.relu2, X, TARGETS))
    got = attr.LayerAblationCam(a, a.relu2).attribute(X, TARGETS, **kw)
    torch.testing.assert_close(got[:, 0], theirs("AblationCAM", b, b.relu2, X, TARGETS))


@pytest.mark.parametrize("center", [True])
def test_eigen_cam_up_to_the_sign(center: bool) -> None:
    model = FlatNet()
    ours = attr.LayerEigenCam(model, model.relu2).attribute(X, center=center)[:, 0]
    expected = theirs("EigenCAM", model, model.relu2, X, TARGETS)
    for o, e in zip(ours, expected):
        sign = 1.0 if float((o * e).sum()) >= 0 else -1.0
        torch.testing.assert_close(o, sign * e, atol=1e-5, rtol=1e-5)


def _their_vit_reshape(t: Tensor) -> Tensor:
    return t[:, 1:].reshape(t.shape[0], 4, 4, t.shape[2]).permute(0, 3, 1, 2)


@pytest.mark.parametrize(("their_name", "our_name"), GRADIENT)
def test_vit_reshape_transform(their_name: str, our_name: str) -> None:
    model = TinyViT(1000.0 if our_name == "LayerGradCamPlusPlus" else 1.0)  # as above
    method = getattr(attr, our_name)(model, model.block, reshape_transform=attr.vit_reshape(4, 4))
    ours = method.attribute(X_VIT, [1, 2])
    expected = theirs(their_name, model, model.block, X_VIT, [1, 2],
                      reshape_transform=_their_vit_reshape)  # fmt: skip
    assert ours.shape == (2, 1, 4, 4)
    torch.testing.assert_close(ours[:, 0], expected, atol=1e-5, rtol=1e-5)
