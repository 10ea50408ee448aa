"""Time-series attribution plots: attribution shading behind the curves, or coloured curves."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from perspicio._core.validate import ArgumentError
from perspicio.viz._figure import add_colorbar, make_figure, note_in_title, show_if_interactive
from perspicio.viz.scale import (
    TimeseriesVisualizationMethod,
    VisualizeSign,
    default_cmap,
    normalize_attr,
    parse_choice,
    to_numpy,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap, Normalize
    from matplotlib.figure import Figure

__all__ = ["visualize_timeseries_attr"]

_T = TimeseriesVisualizationMethod


def _channels_first(attr: Any, data: Any, channels_last: bool) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as (C, T); a 1D series is one channel."""
    arrays = []
    for value, name in ((attr, "attr"), (data, "data")):
        array = to_numpy(value, name).astype(np.float64)
        if array.ndim == 1:
            array = array[:, None] if channels_last else array[None, :]
        if array.ndim != 2:
            layout = "(T, C)" if channels_last else "(C, T)"
            raise ArgumentError(f"{name} must be 2D {layout}; got shape {array.shape}")
        arrays.append(array.T if channels_last else array)
    attr_ct, data_ct = arrays
    if attr_ct.shape != data_ct.shape:
        raise ArgumentError(
            f"attr and data must have the same shape; got {attr_ct.shape} and {data_ct.shape} "
            "(as (C, T))"
        )
    return attr_ct, data_ct


def _check_labels(channel_labels: Sequence[str] | None, n_channels: int) -> None:
    if channel_labels is not None and len(channel_labels) != n_channels:
        raise ArgumentError(
            f"channel_labels must have one entry per channel ({n_channels}); "
            f"got {len(channel_labels)}"
        )


def _x_positions(x_values: Any, length: int) -> np.ndarray:
    if x_values is None:
        return np.arange(length, dtype=np.float64)
    xs = to_numpy(x_values, "x_values").astype(np.float64).ravel()
    if xs.shape[0] != length:
        raise ArgumentError(
            f"x_values must have length {length} (the series length); got {xs.shape[0]}"
        )
    return xs


def _cell_edges(xs: np.ndarray) -> np.ndarray:
    """T + 1 edges: midpoints between neighbours, half a step beyond each end."""
    if xs.shape[0] == 1:
        return np.array([xs[0] - 0.5, xs[0] + 0.5])
    mids = (xs[:-1] + xs[1:]) / 2
    return np.concatenate([[2 * xs[0] - mids[0]], mids, [2 * xs[-1] - mids[-1]]])


def _shade(
    ax: Axes, xs: np.ndarray, values: np.ndarray, cmap: Colormap, norm: Normalize, alpha: float
) -> None:
    """Colour a full-height band behind each time step by its attribution (one collection)."""
    from matplotlib.collections import PolyCollection

    edges = _cell_edges(xs)
    verts = [[(lo, 0.0), (hi, 0.0), (hi, 1.0), (lo, 1.0)] for lo, hi in pairwise(edges)]
    bands = PolyCollection(
        verts,
        facecolors=cmap(norm(values)),
        edgecolors="none",
        alpha=alpha,
        transform=ax.get_xaxis_transform(),  # x in data units, y across the whole axes
    )
    ax.add_collection(bands, autolim=False)


def _colored_line(
    ax: Axes,
    xs: np.ndarray,
    ys: np.ndarray,
    values: np.ndarray,
    cmap: Colormap,
    norm: Normalize,
    line_kwargs: dict[str, Any],
) -> None:
    """Draw the curve as segments, each coloured by the mean attribution of its two ends."""
    from matplotlib.collections import LineCollection

    points = np.stack([xs, ys], axis=1)  # (T, 2)
    segments = np.stack([points[:-1], points[1:]], axis=1)  # (T - 1, 2, 2)
    line = LineCollection(list(segments), cmap=cmap, norm=norm, **line_kwargs)
    line.set_array((values[:-1] + values[1:]) / 2)
    ax.add_collection(line, autolim=False)
    low, high = float(ys.min()), float(ys.max())
    margin = 0.1 * (high - low) if high > low else 1.0
    ax.set_ylim(low - margin, high + margin)


def _draw_panels(
    axes: list[Axes],
    kind: _T,
    xs: np.ndarray,
    data: np.ndarray,
    norm_attr: np.ndarray,
    channel_labels: Sequence[str] | None,
    style: tuple[Colormap, Normalize, float, dict[str, Any]],
) -> None:
    cmap, cm_norm, alpha, line_kwargs = style
    if kind is _T.overlay_combined:
        import matplotlib

        ax = axes[0]
        ax.set_prop_cycle(color=list(matplotlib.colormaps["Dark2"].colors))  # type: ignore[attr-defined]
        for c, series in enumerate(data):
            label = None if channel_labels is None else channel_labels[c]
            ax.plot(xs, series, label=label, **line_kwargs)
        _shade(ax, xs, norm_attr[0], cmap, cm_norm, alpha)
        if channel_labels is not None:
            ax.legend(loc="best")
        return
    for c, (ax, series) in enumerate(zip(axes, data)):
        if kind is _T.overlay_individual:
            ax.plot(xs, series, **line_kwargs)
            _shade(ax, xs, norm_attr[c], cmap, cm_norm, alpha)
        else:
            _colored_line(ax, xs, series, norm_attr[c], cmap, cm_norm, line_kwargs)
        if channel_labels is not None:
            ax.set_ylabel(channel_labels[c])


def visualize_timeseries_attr(
    attr: Any,
    data: Any,
    x_values: Any = None,
    method: str = "overlay_individual",
    sign: str = "absolute_value",
    channel_labels: Sequence[str] | None = None,
    channels_last: bool = True,
    plt_fig_axis: tuple[Figure, Any] | None = None,
    outlier_perc: float = 2,
    cmap: str | Colormap | None = None,
    alpha_overlay: float = 0.7,
    show_colorbar: bool = False,
    title: str | None = None,
    fig_size: tuple[float, float] = (6, 6),
    use_pyplot: bool = True,
    **pyplot_kwargs: Any,
) -> tuple[Figure, Any]:
    """Draw a (multi-channel) time series with its attributions.

    Attributions are filtered by `sign` and scaled jointly over all channels, with the
    largest ``outlier_perc`` % of the mass clipped, as for images.

    Args:
        attr: Attribution, same shape as `data` (numpy array or tensor).
        data: The series, (T, C) when `channels_last`, else (C, T); a 1D array is one channel.
        x_values: Positions of the T samples on the x axis; default ``0 .. T-1``.
        method: ``overlay_individual`` (one panel per channel, attribution shaded behind
            it), ``overlay_combined`` (all channels in one panel, shaded by the attribution
            summed over channels) or ``colored_graph`` (one panel per channel, the curve
            coloured by attribution).
        sign: ``positive``, ``negative``, ``absolute_value`` or ``all``.
        channel_labels: One name per channel (y labels, or the legend when combined).
        channels_last: Whether the channel axis is the last one.
        plt_fig_axis: An existing ``(Figure, Axes or array of Axes)`` with enough panels.
        outlier_perc: Percentage of the attribution mass clipped as outliers.
        cmap: Colour map; the default depends on `sign` as for images.
        alpha_overlay: Opacity of the shading.
        show_colorbar: Add a colour bar under the last panel.
        title: Title of the first panel.
        fig_size: Size of a new figure, in inches.
        use_pyplot: Make a new figure with pyplot and show it when the backend is interactive.
        **pyplot_kwargs: Passed to the line plots (e.g. ``linewidth``).

    Returns:
        ``(figure, axes)``: a single Axes for one panel, otherwise an array of Axes.

    Example:
        >>> t = np.linspace(0, 6, 50)
        >>> data = np.stack([np.sin(t), np.cos(t)], axis=1)  # (T, C)
        >>> fig, axes = visualize_timeseries_attr(data, data, use_pyplot=False)
        >>> axes.shape
        (2,)
    """
    kind = parse_choice(method, TimeseriesVisualizationMethod, "method")
    sign_kind = parse_choice(sign, VisualizeSign, "sign")
    xs, data_ct, norm_attr, note = _prepare(
        attr, data, x_values, kind, sign_kind, channel_labels, channels_last, outlier_perc
    )
    colormap, vmin, vmax = default_cmap(sign_kind, cmap)
    style = (colormap, _normalizer(vmin, vmax), alpha_overlay, pyplot_kwargs)
    n_panels = 1 if kind is _T.overlay_combined else data_ct.shape[0]
    figure, axes = _panels(plt_fig_axis, use_pyplot, fig_size, n_panels)
    axes_list = list(np.ravel(np.asarray(axes, dtype=object)))
    try:
        _draw_panels(axes_list, kind, xs, data_ct, norm_attr, channel_labels, style)
        _layout(figure, axes_list, xs, adjust=plt_fig_axis is None)
        if show_colorbar:
            _colorbar(figure, axes_list[-1], style, kind)
        note_in_title(axes_list[0], title, note)
    except BaseException:
        if plt_fig_axis is None and use_pyplot:
            import matplotlib.pyplot as plt

            plt.close(figure)
        raise
    if plt_fig_axis is None:
        show_if_interactive(use_pyplot)
    return figure, axes


def _prepare(
    attr: Any,
    data: Any,
    x_values: Any,
    kind: _T,
    sign: VisualizeSign,
    channel_labels: Sequence[str] | None,
    channels_last: bool,
    outlier_perc: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str | None]:
    """Validate and reshape the inputs: x positions, (C, T) data, scaled map, blank note."""
    attr_ct, data_ct = _channels_first(attr, data, channels_last)  # (C, T)
    n_channels, length = data_ct.shape
    if n_channels > length:
        warnings.warn(
            f"{n_channels} channels but only {length} time steps: check channels_last",
            UserWarning,
            stacklevel=3,
        )
    _check_labels(channel_labels, n_channels)
    xs = _x_positions(x_values, length)
    if kind is _T.overlay_combined:
        attr_ct = attr_ct.sum(axis=0, keepdims=True)  # (1, T)
    norm_attr = normalize_attr(attr_ct, sign, outlier_perc)
    note = None
    if not np.any(norm_attr):
        note = "attribution is all zero" if not np.any(attr_ct) else f"no {sign.name} attribution"
    return xs, data_ct, norm_attr, note


def _normalizer(vmin: float, vmax: float) -> Normalize:
    from matplotlib.colors import Normalize

    return Normalize(vmin, vmax)


def _panels(
    plt_fig_axis: tuple[Figure, Any] | None,
    use_pyplot: bool,
    fig_size: tuple[float, float],
    n_panels: int,
) -> tuple[Figure, Any]:
    figure, axes = make_figure(plt_fig_axis, use_pyplot, fig_size, nrows=n_panels, sharex=True)
    found = np.ravel(np.asarray(axes, dtype=object)).shape[0]
    if found < n_panels:
        raise ArgumentError(
            f"plt_fig_axis must provide {n_panels} axes (one per panel); got {found}"
        )
    return figure, axes


def _layout(figure: Figure, axes: list[Axes], xs: np.ndarray, adjust: bool) -> None:
    low, high = (xs[0], xs[-1]) if xs.shape[0] > 1 else tuple(_cell_edges(xs))
    for ax in axes:
        ax.set_xlim(low, high)
    if adjust and len(axes) > 1:
        figure.subplots_adjust(hspace=0)


def _colorbar(
    figure: Figure,
    ax: Axes,
    style: tuple[Colormap, Normalize, float, dict[str, Any]],
    kind: _T,
) -> None:
    from matplotlib.cm import ScalarMappable

    colormap, cm_norm, alpha, _ = style
    mappable = ScalarMappable(norm=cm_norm, cmap=colormap)
    add_colorbar(figure, ax, mappable, alpha=1.0 if kind is _T.colored_graph else alpha, pad=0.4)
