"""Score-CAM, Ablation-CAM and Eigen-CAM against slow one-channel-at-a-time references, closed
forms and the Eigen-CAM sign convention; bad input is refused before any model call."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perspicio.attr import LayerAblationCam, LayerEigenCam, LayerScoreCam, vit_reshape
from perspicio.gradient.cam_free import principal_projection
from perspicio.testing import ConvNet, ReLUMLP
from tests.helpers import CountingModel


class Net(nn.Module):
    """conv -> ReLU (the CAM layer) -> 2x2 max-pool -> flatten -> linear, with an optional
    per-example scale of the logits (an additional forward argument)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(2, 5, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(5 * 3 * 4, 3)

    def head(self, a: Tensor) -> Tensor:
        return self.fc(F.max_pool2d(a, 2).flatten(1))

    def forward(self, x: Tensor, scale: Tensor | None = None) -> Tensor:
        out = self.head(self.relu(self.conv(x)))
        return out if scale is None else out * scale[:, None]


X = torch.randn(3, 2, 6, 8, generator=torch.Generator().manual_seed(0))
SCALE = torch.tensor([1.0, -0.5, 2.0])
TARGET = [0, 2, 1]


def score_cam_reference(model: Net, x: Tensor, target: list[int], scale: Tensor) -> Tensor:
    """Mask the input with each normalised (nearest-upsampled) channel, one pass per channel."""
    a = model.relu(model.conv(x))
    out = torch.zeros(len(x), 1, *a.shape[2:])
    for n in range(len(x)):
        scores = []
        for k in range(a.shape[1]):
            m = F.interpolate(a[n : n + 1, k : k + 1], size=x.shape[2:], mode="nearest")
            m = (m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else torch.zeros_like(m)
            scores.append(model(x[n : n + 1] * m, scale[n : n + 1])[0, target[n]])
        w = torch.softmax(torch.stack(scores), 0)
        out[n, 0] = (w[:, None, None] * a[n]).sum(0)
    return out


def test_score_cam_matches_the_reference() -> None:
    model = Net()
    got = LayerScoreCam(model, model.relu).attribute(
        X, TARGET, SCALE, interpolate_mode="nearest", perturbations_per_eval=2
    )
    torch.testing.assert_close(got, score_cam_reference(model, X, TARGET, SCALE).detach())


def test_score_cam_upsamples_to_the_input_and_leaves_other_inputs_alone() -> None:
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = ConvNet()

        def forward(self, img: Tensor, bias: Tensor) -> Tensor:
            return self.net(img) + bias

    model, img = TwoInputs(), torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    bias = torch.randn(2, 10, generator=torch.Generator().manual_seed(2))
    got = LayerScoreCam(model, model.net.pool).attribute((img, bias), 4)
    a = model.net.pool(model.net.relu2(model.net.conv2(model.net.relu1(model.net.conv1(img)))))
    up = F.interpolate(a, size=(8, 8), mode="bilinear")
    lo, hi = up.amin((2, 3), keepdim=True), up.amax((2, 3), keepdim=True)
    masks = torch.where(hi > lo, (up - lo) / (hi - lo).clamp(min=1e-30), 0.0)  # (2, 16, 8, 8)
    scores = torch.stack([model(img * masks[:, k : k + 1], bias)[:, 4] for k in range(16)], 1)
    expected = (scores.softmax(1)[:, :, None, None] * a).sum(1, keepdim=True)
    assert isinstance(got, Tensor) and got.shape == (2, 1, 4, 4)
    torch.testing.assert_close(got, expected.detach())


@pytest.mark.parametrize("per_eval", [None, 1, 4])
def test_ablation_cam_matches_the_reference(per_eval: int | None) -> None:
    model = Net()
    a = model.relu(model.conv(X)).detach()
    y = model.head(a)[range(3), TARGET] * SCALE
    expected = torch.zeros(3, 1, 6, 8)
    for k in range(5):
        ablated = a.clone()
        ablated[:, k] = 0
        w = (y - model.head(ablated)[range(3), TARGET] * SCALE) / y  # (3,)
        expected += w[:, None, None, None] * a[:, k : k + 1]
    got = LayerAblationCam(model, model.relu).attribute(
        X, TARGET, SCALE, perturbations_per_eval=per_eval
    )
    torch.testing.assert_close(got, expected.detach())


def test_ablation_cam_closed_form_on_a_pooled_linear_head() -> None:
    """``y − y_k = W_ck mean(A_k)`` for ``y = Σ_k W_ck mean(A_k) + b``."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3))  # fmt: skip
    a = model[1](model[0](X)).detach()
    y = model(X)[range(3), TARGET].detach()
    w = model[4].weight[TARGET] * a.mean((2, 3)) / y[:, None]  # (3, 4)
    expected = (w[:, :, None, None] * a).sum(1, keepdim=True)
    torch.testing.assert_close(LayerAblationCam(model, model[1]).attribute(X, TARGET), expected)


def test_ablation_cam_through_vit_reshape_ablates_the_channel_of_every_patch_token() -> None:
    torch.manual_seed(4)
    block, head = nn.Linear(3, 3), nn.Linear(5 * 3, 2)
    model = nn.Sequential(block, nn.Flatten(), head)
    t = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(5))  # class token + 2x2
    got = LayerAblationCam(model, block, reshape_transform=vit_reshape(2, 2)).attribute(t, 1)
    v = block(t).detach()
    y = head(v.flatten(1))[:, 1]
    expected = torch.zeros(2, 1, 2, 2)
    for k in range(3):
        ablated = v.clone()
        ablated[:, 1:, k] = 0  # the class token is not part of the map and is kept
        w = (y - head(ablated.flatten(1))[:, 1]) / y
        expected[:, 0] += w[:, None, None] * v[:, 1:, k].reshape(2, 2, 2)
    torch.testing.assert_close(got, expected.detach())


def test_ablation_cam_refuses_a_transform_that_changes_values() -> None:
    model = ConvNet()
    cam = LayerAblationCam(model, model.conv1, reshape_transform=lambda t: 2 * t + 0.5)
    with pytest.raises(ValueError, match="only moves elements"):
        cam.attribute(torch.rand(1, 1, 8, 8), 0)


def test_eigen_cam_is_the_first_principal_component_with_a_fixed_sign() -> None:
    model = ConvNet()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    a = model.relu2(model.conv2(model.relu1(model.conv1(x)))).detach()
    for center in (True, False):
        got = LayerEigenCam(model, model.relu2).attribute(x, center=center)
        for n in range(3):
            m = a[n].reshape(16, -1).T.double()  # (P, C)
            if center:
                m = m - m.mean(0)
            v = torch.linalg.eigh(m.T @ m).eigenvectors[:, -1]  # top eigenvector of M^T M
            proj = (m @ v).reshape(8, 8)
            proj = proj if float(proj.flatten() @ a[n].sum(0).flatten().double()) >= 0 else -proj
            torch.testing.assert_close(got[n, 0].double(), proj, atol=1e-5, rtol=1e-4)
        if center:
            torch.testing.assert_close(got.sum((2, 3)), torch.zeros(3, 1), atol=1e-4, rtol=0)
        else:  # non-negative values: the first singular vector is non-negative
            assert bool((got >= -1e-6).all())


def test_eigen_cam_sign_follows_the_total_activation() -> None:
    """The SVD gives the component up to its sign; the convention makes the map correlate
    positively with ``Σ_k A_k``, so negating the values negates the map (an SVD alone would
    be free to keep it)."""
    values = torch.randn(2, 6, 4, 5, generator=torch.Generator().manual_seed(7))
    for v in (values, -values, values.abs()):
        got = principal_projection(v)
        assert bool(((got * v.sum(1, keepdim=True)).sum((1, 2, 3)) >= 0).all())
    torch.testing.assert_close(principal_projection(-values), -principal_projection(values))


BAD: list[tuple[Any, dict[str, Any], type[Exception], str]] = [
    (LayerScoreCam, {"perturbations_per_eval": 0}, ValueError, "at least 1, got 0"),
    (LayerScoreCam, {"perturbations_per_eval": "2"}, TypeError, "perturbations_per_eval"),
    (LayerScoreCam, {"interpolate_mode": 2}, TypeError, "interpolate_mode"),
    (LayerScoreCam, {"target": [1, 2]}, ValueError, "target gives 2 indices"),
    (LayerAblationCam, {"perturbations_per_eval": -1}, ValueError, "at least 1, got -1"),
    (LayerEigenCam, {"target": [1, 2]}, ValueError, "target gives 2 indices"),
]


@pytest.mark.parametrize(("method", "kwargs", "error", "match"), BAD)
def test_bad_arguments_before_any_model_call(
    method: Any, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    inner = ConvNet()
    model = CountingModel(inner)
    with pytest.raises(error, match=match):
        method(model, inner.conv2).attribute(torch.rand(3, 1, 8, 8), **{"target": 1, **kwargs})
    assert model.calls == 0


def test_score_cam_needs_an_input_of_the_layers_rank() -> None:
    model = ReLUMLP()
    with pytest.raises(ValueError, match="no input has the rank"):
        LayerScoreCam(model, model.relu1).attribute(torch.randn(2, 6), 0)


def test_score_and_ablation_cam_need_one_score_per_example() -> None:
    model = ConvNet()
    with pytest.raises(ValueError, match="one score per example"):
        LayerAblationCam(model, model.conv2).attribute(
            torch.rand(2, 1, 8, 8), lambda out: out[:, 0].sum()
        )
