"""Image plots: rendered pixels, every method/sign combination, errors, mask helpers."""

from __future__ import annotations

import itertools
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from perspicio.viz import (
    draw_mask_border,
    draw_mask_legend,
    visualize_image_attr,
    visualize_image_attr_multiple,
)

METHODS = ["heat_map", "blended_heat_map", "original_image", "masked_image", "alpha_scaling"]
SIGNS = ["positive", "negative", "absolute_value", "all"]


def _quadrant_attr(size: int = 10) -> np.ndarray:
    """Positive in the top-left quadrant, negative in the bottom-right, zero elsewhere."""
    attr = np.zeros((size, size, 3))
    half = size // 2
    attr[:half, :half] = 1.0
    attr[half:, half:] = -1.0
    return attr


def _render(fig: Figure) -> np.ndarray:
    """(H, W, 4) uint8 pixels of the figure."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def _full_axes(pixels: int = 100) -> tuple[Figure, Axes]:
    """A figure of `pixels` x `pixels` whose axes cover it exactly."""
    fig = Figure(figsize=(2, 2), dpi=pixels / 2)
    return fig, fig.add_axes((0.0, 0.0, 1.0, 1.0))


def _is_white(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., :3] > 245).all(axis=-1)


def _is_green(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb[..., :3].astype(int)
    return (rgb[..., 1] > rgb[..., 0] + 60) & (rgb[..., 1] > rgb[..., 2] + 30)


def _is_red(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb[..., :3].astype(int)
    return (rgb[..., 0] > rgb[..., 1] + 60) & (rgb[..., 0] > rgb[..., 2] + 60)


def test_positive_heat_map_lights_exactly_the_top_left_quadrant():
    fig, ax = _full_axes(100)
    visualize_image_attr(
        _quadrant_attr(10), sign="positive", plt_fig_axis=(fig, ax), use_pyplot=False
    )
    rgba = _render(fig)
    assert rgba.shape == (100, 100, 4)
    inner = rgba[2:-2, 2:-2]  # skip the 1-pixel frame drawn by the axes spines
    lit = ~_is_white(inner)
    expected = np.zeros((96, 96), dtype=bool)
    expected[:48, :48] = True  # rows/cols 2..49 of the figure
    edge = np.zeros_like(expected)  # allow one pixel of resampling at the quadrant border
    edge[46:50, :50] = edge[:50, 46:50] = True
    assert (lit == expected)[~edge].all()
    assert _is_green(inner[:46, :46]).all()


def test_default_figure_quadrants_by_pixel():
    attr = _quadrant_attr(10)
    fig, ax = visualize_image_attr(attr, sign="all", fig_size=(3, 3), use_pyplot=False)
    rgba = _render(fig)
    box = ax.get_images()[0].get_window_extent()
    height = rgba.shape[0]

    def at(fx: float, fy: float) -> np.ndarray:
        """Pixel at a fraction across / down the drawn image."""
        col = int(box.x0 + fx * box.width)
        row = int(height - (box.y1 - fy * box.height))
        return rgba[row - 2 : row + 3, col - 2 : col + 3]

    assert _is_green(at(0.25, 0.25)).all()
    assert _is_red(at(0.75, 0.75)).all()
    assert _is_white(at(0.75, 0.25)).all() and _is_white(at(0.25, 0.75)).all()
    assert not ax.get_xticks().size and not ax.get_yticks().size


def test_negative_heat_map_lights_bottom_right():
    fig, ax = _full_axes(60)
    visualize_image_attr(_quadrant_attr(6), sign="negative", plt_fig_axis=(fig, ax))
    rgba = _render(fig)
    assert _is_red(rgba[35:57, 35:57]).all()
    assert _is_white(rgba[3:27, 3:27]).all() and _is_white(rgba[3:27, 35:57]).all()


@pytest.mark.parametrize(("method", "sign"), list(itertools.product(METHODS, SIGNS)))
def test_every_method_and_sign(method, sign):
    rng = np.random.default_rng(0)
    attr, image = rng.normal(size=(8, 8, 3)), rng.random((8, 8, 3))
    if sign == "all" and method in ("masked_image", "alpha_scaling"):
        with pytest.raises(ValueError, match="sign='all' cannot be drawn with method="):
            visualize_image_attr(attr, image, method, sign, use_pyplot=False)
        return
    fig, ax = visualize_image_attr(attr, image, method, sign, use_pyplot=False, title="t")
    assert isinstance(fig, Figure) and isinstance(ax, Axes)
    assert ax.get_images() and ax.get_title() == "t"


@pytest.mark.parametrize("method", METHODS)
def test_grayscale_image_and_chw_tensor(method):
    sign = "positive"
    attr = torch.rand(1, 6, 7)  # (C, H, W) with C = 1
    image = torch.rand(1, 6, 7)
    _, ax = visualize_image_attr(attr, image, method, sign, use_pyplot=False)
    assert ax.get_images()[-1].get_array().shape[:2] == (6, 7)


def test_chw_tensor_equals_hwc_array():
    attr = torch.randn(3, 5, 6)
    _, ax1 = visualize_image_attr(attr, sign="all", use_pyplot=False)
    _, ax2 = visualize_image_attr(attr.permute(1, 2, 0).numpy(), sign="all", use_pyplot=False)
    _, ax3 = visualize_image_attr(attr[None], sign="all", use_pyplot=False)  # batch of one
    expected = ax2.get_images()[0].get_array()
    np.testing.assert_array_equal(ax1.get_images()[0].get_array(), expected)
    np.testing.assert_array_equal(ax3.get_images()[0].get_array(), expected)


def test_original_image_without_attr():
    image = np.zeros((4, 4, 3))
    image[0, 0] = [1.0, 0.5, 0.0]
    _, ax = visualize_image_attr(None, image, method="original_image", use_pyplot=False)
    shown = np.asarray(ax.get_images()[0].get_array())
    assert shown.dtype == np.uint8 and shown[0, 0].tolist() == [255, 127, 0]


def test_masked_and_alpha_scaling_pixels():
    image = np.full((2, 2, 3), 200, dtype=np.uint8)
    attr = np.array([[1.0, 0.0], [0.0, 0.0]])
    _, ax = visualize_image_attr(attr, image, "masked_image", "positive", use_pyplot=False)
    masked = np.asarray(ax.get_images()[0].get_array())
    assert masked[0, 0].tolist() == [200] * 3 and masked[1, 1].tolist() == [0] * 3
    _, ax = visualize_image_attr(attr, image, "alpha_scaling", "positive", use_pyplot=False)
    rgba = np.asarray(ax.get_images()[0].get_array())
    assert rgba.shape == (2, 2, 4) and rgba[0, 0, 3] == 255 and rgba[1, 1, 3] == 0


@pytest.mark.parametrize("title", [None, "my title"])
def test_all_zero_attribution_is_blank_with_note(title):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig, ax = visualize_image_attr(
            np.zeros((5, 5, 3)), sign="absolute_value", title=title, use_pyplot=False
        )
        rgba = _render(fig)
    assert "attribution is all zero" in ax.get_title()
    assert title is None or ax.get_title().startswith(title)
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), np.zeros((5, 5)))
    box = ax.get_images()[0].get_window_extent()
    row, col = int(rgba.shape[0] - (box.y0 + box.y1) / 2), int((box.x0 + box.x1) / 2)
    assert _is_white(rgba[row - 5 : row + 5, col - 5 : col + 5]).all()


def test_no_attribution_of_requested_sign_is_noted():
    _, ax = visualize_image_attr(-np.ones((3, 3)), sign="positive", use_pyplot=False)
    assert "no positive attribution" in ax.get_title()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"method": "heatmap"}, ValueError, "method must be one of 'heat_map', 'blended"),
        ({"sign": "pos"}, ValueError, "sign must be one of 'positive'"),
        ({"method": "blended_heat_map"}, ValueError, "original_image is required"),
        ({"original_image": np.ones((4, 5, 3))}, ValueError, "same height and width"),
        ({"attr": np.ones((2, 4, 4, 3))}, ValueError, r"must have shape \(H, W\)"),
        ({"attr": np.ones(4)}, ValueError, r"must have shape \(H, W\)"),
        ({"attr": None}, ValueError, "attr is required for method='heat_map'"),
        ({"attr": "abc"}, TypeError, "attr must hold numbers"),
        ({"outlier_perc": 200}, ValueError, "outlier_perc must be in"),
        ({"plt_fig_axis": "ax"}, TypeError, "plt_fig_axis must be a"),
    ],
)
def test_bad_input(kwargs, error, message):
    args = {"attr": np.ones((4, 4, 3)), "use_pyplot": True, **kwargs}
    with pytest.raises(error, match=message):
        visualize_image_attr(**args)
    assert not plt.get_fignums()  # nothing left open by a failed pyplot call


def test_pyplot_figure_on_agg_does_not_show(monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("show called on Agg"))
    fig, _ = visualize_image_attr(np.ones((3, 3)))
    assert plt.fignum_exists(fig.number)


def test_pyplot_shows_on_interactive_backend(monkeypatch):
    shown = []
    monkeypatch.setattr(matplotlib, "get_backend", lambda: "TkAgg")
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(True))
    visualize_image_attr(np.ones((3, 3)))
    assert shown == [True]
    visualize_image_attr(np.ones((3, 3)), use_pyplot=False)
    assert shown == [True]


def test_without_pyplot_nothing_is_registered():
    fig, _ = visualize_image_attr(np.ones((3, 3)), use_pyplot=False)
    assert not plt.get_fignums() and type(fig) is Figure


@pytest.mark.parametrize(("method", "has_bar"), [("heat_map", True), ("masked_image", False)])
def test_colorbar(method, has_bar):
    attr, image = np.random.rand(4, 4, 3), np.random.rand(4, 4, 3)
    fig, _ = visualize_image_attr(
        attr, image, method, "positive", show_colorbar=True, use_pyplot=False
    )
    assert len(fig.axes) == 2
    assert fig.axes[1].axison == has_bar


def test_custom_cmap_and_alpha():
    attr, image = np.random.rand(4, 4, 3), np.random.rand(4, 4, 3)
    _, ax = visualize_image_attr(
        attr, image, "blended_heat_map", cmap="viridis", alpha_overlay=0.3, use_pyplot=False
    )
    heat = ax.get_images()[-1]
    assert heat.get_cmap().name == "viridis" and heat.get_alpha() == 0.3


def test_multiple_panels():
    attr, image = np.random.randn(5, 5, 3), np.random.rand(5, 5, 3)
    fig, axes = visualize_image_attr_multiple(
        attr,
        image,
        ["original_image", "heat_map", "blended_heat_map"],
        ["all", "positive", "negative"],
        titles=["a", "b", "c"],
        use_pyplot=False,
        show_colorbar=True,
    )
    assert isinstance(axes, list) and len(axes) == 3
    assert [ax.get_title() for ax in axes] == ["a", "b", "c"]
    fig, one = visualize_image_attr_multiple(attr, image, ["heat_map"], ["all"])
    assert isinstance(one, Axes) and plt.fignum_exists(fig.number)


@pytest.mark.parametrize(
    ("methods", "signs", "titles", "message"),
    [
        (["heat_map"], ["all", "all"], None, "equal length"),
        ([], [], None, "non-empty"),
        (["heat_map"], ["all"], ["a", "b"], "one entry per method"),
        (["heat_map", "masked_image"], ["all", "all"], None, "sign='all' cannot"),
    ],
)
def test_multiple_bad_input(methods, signs, titles, message):
    with pytest.raises(ValueError, match=message):
        visualize_image_attr_multiple(np.ones((3, 3)), np.ones((3, 3)), methods, signs, titles)
    assert not plt.get_fignums()


def test_mask_border_matches_erosion():
    mask = np.zeros((6, 6), dtype=bool)
    mask[1:5, 1:5] = True
    ax = Figure().subplots()
    draw_mask_border(ax, mask, border_color="red")
    rgba = ax.get_images()[0].get_array()
    ring = mask.copy()
    ring[2:4, 2:4] = False
    np.testing.assert_array_equal(rgba[..., 3] > 0, ring)
    assert rgba[1, 1].tolist() == [1.0, 0.0, 0.0, 1.0]
    draw_mask_border(ax, torch.from_numpy(mask), border_width=2, border_color=(0, 0, 1))
    np.testing.assert_array_equal(ax.get_images()[1].get_array()[..., 3] > 0, mask)


def test_mask_border_equals_scipy_reference():
    ndimage = pytest.importorskip("scipy.ndimage")
    mask = np.random.default_rng(1).random((12, 12)) > 0.3
    ax = Figure().subplots()
    draw_mask_border(ax, mask, border_width=2)
    expected = mask & ~ndimage.binary_erosion(mask, iterations=2)
    np.testing.assert_array_equal(ax.get_images()[0].get_array()[..., 3] > 0, expected)


def test_mask_helpers_skip_empty_and_reject_bad_masks():
    ax = Figure().subplots()
    draw_mask_border(ax, np.zeros((3, 3), dtype=bool))
    draw_mask_legend(ax, np.zeros((3, 3), dtype=bool), "x")
    assert not ax.get_images() and not ax.texts
    with pytest.raises(ValueError, match="mask must be a 2D"):
        draw_mask_border(ax, np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="border_width must be at least 1"):
        draw_mask_border(ax, np.ones((2, 2)), border_width=0)
    with pytest.raises(TypeError, match="border_width must be an int"):
        draw_mask_border(ax, np.ones((2, 2)), border_width=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mask must be a 2D"):
        draw_mask_legend(ax, np.ones(3), "x")


def test_mask_legend_at_centroid():
    mask = np.zeros((5, 8), dtype=bool)
    mask[0:2, 4:8] = True
    ax = Figure().subplots()
    draw_mask_legend(ax, mask, "<dog>", fontsize=7, text_color="yellow", bbox_alpha=0.3)
    text = ax.texts[0]
    assert text.get_position() == (5.5, 0.5) and text.get_text() == "<dog>"
    assert text.get_fontsize() == 7 and text.get_color() == "yellow"
    assert text.get_bbox_patch().get_alpha() == 0.3
