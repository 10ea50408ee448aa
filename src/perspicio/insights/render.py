"""Turn images and attribution maps into small PNG data URLs, with no imaging dependency.

The explorer ships pictures to the browser inline (``data:image/png;base64,...``), so one JSON
answer holds everything a view needs. PNG encoding is done here with :mod:`zlib`; colours come
from one diverging map (negative red, zero white, positive green, as in :mod:`perspicio.viz`)
that the frontend's colour legend and token colours repeat.
"""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import numpy as np
import torch

from perspicio._core.validate import ArgumentError
from perspicio.attr.visualization import cumulative_sum_threshold

#: Anchor colours of the diverging map, from -1 through 0 to +1: red for negative, white, green
#: for positive, as in :func:`perspicio.viz.visualize_image_attr` (the legend uses the same).
DIVERGING_COLORS: tuple[str, str, str] = ("#bf0d0d", "#ffffff", "#0d8c26")
_ANCHORS = np.array([[0xBF, 0x0D, 0x0D], [0xFF, 0xFF, 0xFF], [0x0D, 0x8C, 0x26]], dtype=np.float64)

#: Percentage of the total attribution mass clipped as outliers when scaling a heat map
#: (the default of :func:`perspicio.viz.visualize_image_attr`).
OUTLIER_PERC = 2.0


def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode an ``(H, W, 3)`` or ``(H, W, 4)`` ``uint8`` array as a PNG file."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ArgumentError(
            f"expected an (H, W, 3|4) uint8 array, got {pixels.dtype} {pixels.shape}"
        )
    height, width, channels = pixels.shape
    rows = np.ascontiguousarray(pixels).reshape(height, width * channels)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter 0

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    colour_type = 6 if channels == 4 else 2
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(raw, 6)),
            chunk(b"IEND", b""),
        ]
    )


def png_data_url(pixels: np.ndarray) -> str:
    """A ``data:`` URL holding ``pixels`` as a PNG."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode("ascii")


def to_numpy(value: Any) -> np.ndarray:
    """A float64 numpy copy of a tensor, array or nested list (detached, on the CPU)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


def image_hwc(value: Any) -> np.ndarray:
    """An image as ``(H, W, C)`` floats with C in 1, 3 or 4; accepts CHW, HWC or HW layouts.

    A leading batch dimension of size 1 is dropped. An ambiguous 3-D shape is read as
    channels-first, PyTorch's convention.
    """
    arr = to_numpy(value)
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        return arr[:, :, None]
    if arr.ndim != 3:
        raise ArgumentError(f"cannot show an array of shape {arr.shape} as an image")
    if arr.shape[0] in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)
    elif arr.shape[2] not in (1, 3, 4):  # many channels: show their mean
        arr = arr.transpose(1, 2, 0).mean(axis=2, keepdims=True)
    return arr


def image_to_uint8(hwc: np.ndarray) -> np.ndarray:
    """Scale an image to ``uint8`` RGB(A): [0, 1] and [0, 255] ranges are kept, others stretched."""
    lo, hi = float(np.nanmin(hwc)), float(np.nanmax(hwc))
    if lo >= 0.0 and hi <= 1.0:
        scaled = hwc * 255.0
    elif lo >= 0.0 and hi <= 255.0:
        scaled = hwc
    else:
        scaled = (hwc - lo) / (hi - lo if hi > lo else 1.0) * 255.0
    out = np.clip(np.nan_to_num(scaled), 0, 255).astype(np.uint8)
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return out


def attribution_map(attribution: Any, height: int, width: int) -> np.ndarray:
    """Reduce an image attribution to one ``(height, width)`` map (channels summed).

    A map of another size (an input transform resized the image) is resampled to the
    shown image by nearest neighbour.
    """
    arr = to_numpy(attribution)
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3:
        arr = arr.sum(axis=0) if arr.shape[0] <= arr.shape[2] else arr.sum(axis=2)
    elif arr.ndim != 2:
        raise ArgumentError(f"cannot show an attribution of shape {arr.shape} as an image map")
    if arr.shape != (height, width):
        rows = (np.arange(height) * arr.shape[0] // height).clip(0, arr.shape[0] - 1)
        cols = (np.arange(width) * arr.shape[1] // width).clip(0, arr.shape[1] - 1)
        arr = arr[np.ix_(rows, cols)]
    return np.nan_to_num(arr)


def symmetric_scale(values: np.ndarray) -> float:
    """The magnitude mapped to full colour (never 0), chosen as :mod:`perspicio.viz` does.

    The largest magnitudes, which together hold at most ``OUTLIER_PERC`` % of the total
    absolute attribution, saturate.
    """
    mags = np.abs(values)
    scale = cumulative_sum_threshold(mags, 100.0 - OUTLIER_PERC) if mags.size else 0.0
    if scale <= 0:
        nonzero = mags[mags > 0]
        scale = float(nonzero.min()) if nonzero.size else 1.0
    return float(scale)


def diverging_rgb(normalised: np.ndarray) -> np.ndarray:
    """Map values in [-1, 1] to ``(..., 3)`` floats in [0, 255] on the diverging map."""
    v = np.clip(normalised, -1.0, 1.0)[..., None]
    neg = _ANCHORS[1] + (_ANCHORS[0] - _ANCHORS[1]) * (-v)
    pos = _ANCHORS[1] + (_ANCHORS[2] - _ANCHORS[1]) * v
    return np.where(v < 0, neg, pos)


def image_views(data: Any, attribution: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """Original, heat-map and blended PNGs for one example, and the heat map's legend."""
    original = image_to_uint8(image_hwc(data))
    height, width = original.shape[:2]
    amap = attribution_map(attribution, height, width)
    scale = symmetric_scale(amap)
    normalised = np.clip(amap / scale, -1.0, 1.0)
    heat = diverging_rgb(normalised)
    # the original in grey, with the heat map laid over it in proportion to |attribution|
    grey = np.repeat(original[:, :, :3].astype(np.float64).mean(axis=2, keepdims=True), 3, axis=2)
    weight = np.abs(normalised)[..., None] ** 0.6
    blended = grey * (1.0 - weight) + heat * weight
    base = {"original": png_data_url(original)}
    modified = {
        "heat_map": png_data_url(heat.round().astype(np.uint8)),
        "blended": png_data_url(np.clip(blended, 0, 255).round().astype(np.uint8)),
        "legend": {"min": -scale, "max": scale, "colors": list(DIVERGING_COLORS)},
        "width": width,
        "height": height,
    }
    return base, modified
