"""Time-series plots: panels, shading colours, coloured lines, layouts and errors."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure

from perspicio.viz import visualize_timeseries_attr
from perspicio.viz.scale import normalize_attr

METHODS = ["overlay_individual", "overlay_combined", "colored_graph"]
SIGNS = ["positive", "negative", "absolute_value", "all"]


def _series(length: int = 12, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(length, channels)), rng.normal(size=(length, channels))


def _bands(ax: Axes) -> np.ndarray:
    (bands,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    return bands.get_facecolors()


@pytest.mark.parametrize(("method", "sign"), list(itertools.product(METHODS, SIGNS)))
def test_every_method_and_sign(method, sign):
    attr, data = _series()
    fig, axes = visualize_timeseries_attr(attr, data, method=method, sign=sign, use_pyplot=False)
    assert isinstance(fig, Figure)
    if method == "overlay_combined":
        assert isinstance(axes, Axes)
        assert len(axes.get_lines()) == 3
    else:
        assert isinstance(axes, np.ndarray) and axes.shape == (3,)
        assert all(isinstance(ax, Axes) for ax in axes)


def test_shading_follows_attribution():
    attr = np.zeros((6, 2))
    attr[3, 0] = 2.0
    attr[1, 0] = 1.0
    attr[4, 1] = -5.0  # filtered out by sign="positive"
    _, axes = visualize_timeseries_attr(
        attr, np.ones((6, 2)), sign="positive", outlier_perc=0, use_pyplot=False
    )
    first, second = _bands(axes[0]), _bands(axes[1])
    assert first.shape == (6, 4)
    white = np.array([1.0, 1.0, 1.0])
    for t in (0, 2, 4, 5):
        np.testing.assert_allclose(first[t, :3], white, atol=1e-6)
    np.testing.assert_allclose(second[:, :3], np.tile(white, (6, 1)), atol=1e-6)
    assert first[3, 1] > first[3, 0] and first[3, 1] > first[3, 2]  # green
    assert first[3, :3].sum() < first[1, :3].sum()  # stronger value, darker band
    assert np.allclose(first[:, 3], 0.7)  # alpha_overlay default


def test_channels_first_equals_channels_last():
    attr, data = _series(10, 2)
    _, last = visualize_timeseries_attr(attr, data, sign="all", use_pyplot=False)
    _, first = visualize_timeseries_attr(
        torch.from_numpy(attr.T), data.T, sign="all", channels_last=False, use_pyplot=False
    )
    for ax_a, ax_b in zip(last, first):
        np.testing.assert_array_equal(_bands(ax_a), _bands(ax_b))
        np.testing.assert_array_equal(
            ax_a.get_lines()[0].get_ydata(), ax_b.get_lines()[0].get_ydata()
        )


def test_combined_shades_the_channel_sum():
    attr = np.zeros((5, 2))
    attr[1] = [1.0, 1.0]
    attr[3] = [1.0, 0.0]
    attr[4] = [1.0, -1.0]  # cancels out
    _, ax = visualize_timeseries_attr(
        attr,
        np.zeros((5, 2)),
        method="overlay_combined",
        channel_labels=["a", "<b>"],
        outlier_perc=0,
        use_pyplot=False,
    )
    bands = _bands(ax)[:, :3].sum(axis=1)
    assert bands[1] < bands[3] < bands[4] == pytest.approx(3.0)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "<b>"]


def test_colored_graph_uses_segment_means():
    attr, data = _series(8, 2)
    _, axes = visualize_timeseries_attr(
        attr, data, method="colored_graph", sign="all", linewidth=4, use_pyplot=False
    )
    norm = normalize_attr(attr.T, "all", 2)
    for c, ax in enumerate(axes):
        (line,) = [col for col in ax.collections if isinstance(col, LineCollection)]
        np.testing.assert_allclose(line.get_array(), (norm[c, :-1] + norm[c, 1:]) / 2)
        assert line.get_linewidths()[0] == 4
        low, high = ax.get_ylim()
        assert low < data[:, c].min() and high > data[:, c].max()


def test_x_values_labels_and_kwargs():
    attr, data = _series(4, 2)
    xs = np.array([10.0, 20.0, 30.0, 40.0])
    _, axes = visualize_timeseries_attr(
        attr,
        data,
        x_values=xs,
        channel_labels=["left", "right"],
        title="signal",
        color="black",
        use_pyplot=False,
    )
    line = axes[0].get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), xs)
    assert line.get_color() == "black"
    assert axes[0].get_xlim() == (10.0, 40.0)
    assert [ax.get_ylabel() for ax in axes] == ["left", "right"]
    assert axes[0].get_title() == "signal"


def test_one_dimensional_series_and_single_step():
    _, ax = visualize_timeseries_attr(np.arange(5.0), np.arange(5.0), use_pyplot=False)
    assert isinstance(ax, Axes)
    _, ax = visualize_timeseries_attr(np.ones((1, 1)), np.ones((1, 1)), use_pyplot=False)
    assert ax.get_xlim() == (-0.5, 0.5)


def test_all_zero_attribution_note():
    _, axes = visualize_timeseries_attr(np.zeros((6, 2)), np.ones((6, 2)), use_pyplot=False)
    assert "attribution is all zero" in axes[0].get_title()


def test_colorbar_and_pyplot():
    attr, data = _series(6, 2)
    fig, _ = visualize_timeseries_attr(attr, data, show_colorbar=True)
    assert len(fig.axes) == 3 and plt.fignum_exists(fig.number)


def test_existing_axes_are_used():
    attr, data = _series(6, 2)
    fig = Figure()
    grid = fig.subplots(2, 1)
    out_fig, out_axes = visualize_timeseries_attr(attr, data, plt_fig_axis=(fig, grid))
    assert out_fig is fig and out_axes is grid and len(grid[1].get_lines()) == 1
    with pytest.raises(ValueError, match="must provide 2 axes"):
        visualize_timeseries_attr(attr, data, plt_fig_axis=(fig, grid[0]))


def test_warns_when_channels_outnumber_steps():
    with pytest.warns(UserWarning, match="5 channels but only 2 time steps"):
        visualize_timeseries_attr(np.ones((2, 5)), np.ones((2, 5)), use_pyplot=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "overlay"}, "method must be one of 'overlay_individual'"),
        ({"sign": "both"}, "sign must be one of"),
        ({"attr": np.ones((6, 3))}, "same shape"),
        ({"data": np.ones((6, 2, 1))}, r"data must be 2D \(T, C\)"),
        ({"x_values": np.arange(5)}, "x_values must have length 6"),
        ({"channel_labels": ["a"]}, r"one entry per channel \(2\)"),
        ({"outlier_perc": -1}, "outlier_perc must be in"),
    ],
)
def test_bad_input(kwargs, message):
    args = {"attr": np.ones((6, 2)), "data": np.ones((6, 2)), **kwargs}
    with pytest.raises(ValueError, match=message):
        visualize_timeseries_attr(**args)
    assert not plt.get_fignums()
