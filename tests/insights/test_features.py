"""Feature types, the PNG encoder and the public constructors."""

from __future__ import annotations

import base64
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch

from perspicio.insights import AttributionVisualizer, Batch
from perspicio.insights.features import (
    BaseFeature,
    EmptyFeature,
    FeatureOutput,
    GeneralFeature,
    ImageFeature,
    TextFeature,
)
from perspicio.insights.render import image_hwc, png_bytes, png_data_url, symmetric_scale


def _decode_png(data: bytes) -> np.ndarray:
    """A minimal reader for the encoder's own output (filter 0, 8-bit RGB/RGBA)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body) & 0xFFFFFFFF
        header = body if tag == b"IHDR" else header
        idat += body if tag == b"IDAT" else b""
        pos += 12 + length
    width, height, _, colour, *_ = struct.unpack(">IIBBBBB", header)
    channels = 4 if colour == 6 else 3
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * channels)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, channels)


@pytest.mark.parametrize("channels", [3, 4])
def test_png_round_trip(channels: int) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, channels), dtype=np.uint8)
    assert (_decode_png(png_bytes(pixels)) == pixels).all()
    url = png_data_url(pixels)
    assert _decode_png(base64.b64decode(url.split(",", 1)[1])).shape == (5, 7, channels)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)])
def test_png_refuses_other_arrays(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(bad)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((1, 8, 6), (8, 6, 1)), ((3, 8, 6), (8, 6, 3)), ((8, 6, 3), (8, 6, 3)), ((8, 6), (8, 6, 1))],
)
def test_image_layouts(shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    assert image_hwc(torch.rand(shape)).shape == expected


def test_scale_clips_outliers_and_never_is_zero() -> None:
    values = np.array([1.0] * 1000 + [-10.0])  # the outlier holds 1% of the mass: clipped
    assert symmetric_scale(values) == 1.0
    assert symmetric_scale(np.zeros(4)) == 1.0


def test_image_feature_views() -> None:
    feature = ImageFeature("Photo", None, None, visualization_transform=lambda x: x * 0.5)
    data = torch.rand(1, 3, 6, 5)
    attribution = torch.randn(1, 3, 6, 5)
    out = feature.visualize(attribution, data, 0.25)
    assert isinstance(out, FeatureOutput) and out.type == "image" and out.contribution == 0.25
    heat = _decode_png(base64.b64decode(out.modified["heat_map"].split(",", 1)[1]))
    assert heat.shape == (6, 5, 3)
    assert out.modified["legend"]["min"] == -out.modified["legend"]["max"]


def test_image_attribution_of_another_size_is_resampled() -> None:
    out = ImageFeature("Photo", None, None).visualize(
        torch.randn(1, 1, 4, 4), torch.rand(1, 8, 8), 1
    )
    assert out.modified["width"] == 8 and out.modified["height"] == 8


def test_text_feature_tokens_and_scores() -> None:
    vocab = ["<pad>", "<script>", "ok"]
    feature = TextFeature("Text", None, None, lambda ids: [vocab[int(i)] for i in ids])
    out = feature.visualize(torch.tensor([[[1.0, 1.0], [-4.0, 0.0]]]), torch.tensor([[1, 2]]), 0.5)
    assert out.base == ["<script>", "ok"]
    assert out.modified["values"] == [2.0, -4.0]
    assert out.modified["normalized"] == [0.5, -1.0]


def test_general_feature_bars() -> None:
    feature = GeneralFeature("Table", ["a", "b", "c"])
    out = feature.visualize(torch.tensor([[0.0, 2.0, -1.0]]), torch.tensor([[1.0, 2.0, 3.0]]), 1)
    assert out.base == {"categories": ["a", "b", "c"], "values": [1.0, 2.0, 3.0]}
    assert out.modified["normalized"] == [0.0, 1.0, -0.5]
    with pytest.raises(ValueError, match="3 categories"):
        feature.visualize(torch.zeros(1, 4), torch.zeros(1, 4), 1)


def test_empty_feature_has_no_view() -> None:
    out = EmptyFeature().visualize(torch.zeros(1, 2), torch.zeros(1, 2), 0.1)
    assert (out.name, out.type, out.base, out.modified) == ("empty", "empty", None, None)


def test_custom_feature_subclass() -> None:
    class Scalar(BaseFeature):
        def visualization_type(self) -> str:
            return "scalar"

        def visualize(self, attribution, data, contribution_frac):  # type: ignore[no-untyped-def]
            return FeatureOutput(self.name, float(data), float(attribution), "scalar", 1.0)

    feature = Scalar("s", [torch.zeros_like], lambda x: x * 2, None)
    assert len(feature.input_transforms) == 1 and len(feature.baseline_transforms) == 1
    with pytest.raises(TypeError, match="abstract"):
        BaseFeature("x", None, None, None)  # type: ignore[abstract]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"models": "not a model"}, TypeError),
        ({"models": []}, TypeError),
        ({"features": ["image"]}, TypeError),
        ({"score_func": 3}, TypeError),
    ],
)
def test_visualizer_validates_its_arguments(kwargs: dict, error: type) -> None:
    args = {
        "models": torch.nn.Linear(2, 2),
        "classes": ["a", "b"],
        "features": [GeneralFeature("x", "pq")],
        "dataset": [],
        **kwargs,
    }
    with pytest.raises(error):
        AttributionVisualizer(**args)


def test_feature_validation() -> None:
    with pytest.raises(ValueError, match="name"):
        ImageFeature("", None, None)
    with pytest.raises(TypeError, match="callable"):
        ImageFeature("x", [1], None)
    with pytest.raises(TypeError, match="callable"):
        TextFeature("x", None, None, "tokens")  # type: ignore[arg-type]


def test_batch_keeps_its_fields() -> None:
    batch = Batch((torch.zeros(2, 3),), torch.tensor([0, 1]), additional_args=5)
    assert batch.labels is not None and batch.additional_args == 5 and len(batch.inputs) == 1


def test_import_without_the_web_stack() -> None:
    code = (
        "import sys\n"
        "for name in ('fastapi', 'uvicorn', 'anywidget', 'pydantic', 'starlette', 'ipywidgets'):\n"
        "    sys.modules[name] = None\n"
        "import torch, perspicio, perspicio.insights as ins\n"
        "import perspicio.insights.demos, perspicio.insights.jobs, perspicio.insights.plan\n"
        "from perspicio.insights.features import ImageFeature\n"
        "v = ins.AttributionVisualizer(torch.nn.Linear(2, 2), ['a', 'b'],"
        " [ImageFeature('x', None, None)], [])\n"
        "assert 'fastapi' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
