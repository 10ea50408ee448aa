"""Image attribution plots: heat maps, overlays, masks, and mask outlines and labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from perspicio._core.validate import ArgumentError
from perspicio.viz._figure import (
    add_colorbar,
    hide_ticks,
    make_figure,
    note_in_title,
    show_if_interactive,
)
from perspicio.viz.scale import (
    ImageVisualizationMethod,
    VisualizeSign,
    default_cmap,
    normalize_attr,
    parse_choice,
    to_numpy,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

__all__ = [
    "draw_mask_border",
    "draw_mask_legend",
    "visualize_image_attr",
    "visualize_image_attr_multiple",
]

_M = ImageVisualizationMethod
_NEEDS_ONE_SIGN = (_M.masked_image, _M.alpha_scaling)


def _as_hwc(value: Any, name: str) -> np.ndarray:
    """Read an image-like array as (H, W) or (H, W, C); accepts (C, H, W) and a batch of 1."""
    array = to_numpy(value, name)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[-1] not in (1, 3) and array.shape[0] in (1, 3):
        array = np.moveaxis(array, 0, -1)  # (C, H, W) -> (H, W, C)
    if array.ndim not in (2, 3):
        raise ArgumentError(
            f"{name} must have shape (H, W), (H, W, C) or (C, H, W); got {array.shape}"
        )
    return array


def _prepare_image(image: np.ndarray) -> np.ndarray:
    """uint8 pixels in [0, 255]: images with values <= 1 are read as [0, 1] images."""
    pixels = image.astype(np.float64)
    if pixels.size and pixels.max() <= 1.0:
        pixels = pixels * 255
    pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    return pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) from a grey, RGB or RGBA uint8 image."""
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=2)
    return pixels[..., :3]


def _check_inputs(
    attr: Any, original_image: Any, method: str | _M, sign: str | VisualizeSign
) -> tuple[_M, VisualizeSign, np.ndarray | None, np.ndarray | None]:
    """Validate the arguments of `visualize_image_attr` before anything is drawn."""
    kind = parse_choice(method, ImageVisualizationMethod, "method")
    sign_kind = parse_choice(sign, VisualizeSign, "sign")
    if kind in _NEEDS_ONE_SIGN and sign_kind is VisualizeSign.all:
        raise ArgumentError(
            f"sign='all' cannot be drawn with method={kind.name!r}: choose 'positive', "
            "'negative' or 'absolute_value'"
        )
    if attr is None and kind is not _M.original_image:
        raise ArgumentError(f"attr is required for method={kind.name!r}")
    if original_image is None and kind is not _M.heat_map:
        raise ArgumentError(f"original_image is required for method={kind.name!r}")
    attr_hwc = None if attr is None else _as_hwc(attr, "attr")
    image_hwc = None if original_image is None else _as_hwc(original_image, "original_image")
    if attr_hwc is not None and image_hwc is not None and attr_hwc.shape[:2] != image_hwc.shape[:2]:
        raise ArgumentError(
            "attr and original_image must have the same height and width; got "
            f"{attr_hwc.shape} and {image_hwc.shape}"
        )
    return kind, sign_kind, attr_hwc, image_hwc


def _attr_map(
    attr: np.ndarray, sign: VisualizeSign, outlier_perc: float
) -> tuple[np.ndarray, str | None]:
    """(H, W) map scaled for display, and a note when there is nothing to show."""
    summed = attr.sum(axis=2) if attr.ndim == 3 else attr  # (H, W)
    norm = normalize_attr(summed, sign, outlier_perc)
    if np.any(norm):
        return norm, None
    if not np.any(summed):
        return norm, "attribution is all zero"
    return norm, f"no {sign.name} attribution"


def _draw(
    ax: Axes,
    kind: _M,
    norm: np.ndarray | None,
    pixels: np.ndarray | None,
    colours: tuple[Colormap, float, float],
    alpha_overlay: float,
) -> ScalarMappable | None:
    """Draw one visualisation on `ax`; return the heat map image when there is one."""
    cmap, vmin, vmax = colours
    if kind is _M.original_image:
        assert pixels is not None
        if pixels.ndim == 2:
            ax.imshow(pixels, cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(pixels)
        return None
    assert norm is not None
    if kind is _M.heat_map:
        return ax.imshow(norm, cmap=cmap, vmin=vmin, vmax=vmax)
    assert pixels is not None
    if kind is _M.blended_heat_map:
        ax.imshow(_rgb(pixels).mean(axis=2), cmap="gray", vmin=0, vmax=255)
        return ax.imshow(norm, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha_overlay)
    if kind is _M.masked_image:
        ax.imshow((_rgb(pixels) * norm[..., None]).astype(np.uint8))
        return None
    alpha = (norm * 255).astype(np.uint8)[..., None]  # alpha_scaling
    ax.imshow(np.concatenate([_rgb(pixels), alpha], axis=2))
    return None


def visualize_image_attr(
    attr: Any,
    original_image: Any = None,
    method: str = "heat_map",
    sign: str = "absolute_value",
    plt_fig_axis: tuple[Figure, Axes] | None = None,
    outlier_perc: float = 2,
    cmap: str | Colormap | None = None,
    alpha_overlay: float = 0.5,
    show_colorbar: bool = False,
    title: str | None = None,
    fig_size: tuple[float, float] = (6, 6),
    use_pyplot: bool = True,
) -> tuple[Figure, Axes]:
    """Draw an image attribution map, optionally over the image it explains.

    The attribution is summed over channels, filtered by `sign` and scaled into [-1, 1] with
    its largest values (``outlier_perc`` % of the total mass) clipped. An all-zero
    attribution draws a blank map and says so in the title.

    Args:
        attr: Attribution, (H, W), (H, W, C) or (C, H, W) (a numpy array or a tensor; a
            leading batch dimension of 1 is dropped). May be None for ``original_image``.
        original_image: The image, same height and width as `attr`, values in [0, 1] or
            [0, 255]. Needed by every method except ``heat_map``.
        method: ``heat_map``, ``blended_heat_map`` (heat map over the grey image),
            ``original_image``, ``masked_image`` (image times the map) or ``alpha_scaling``
            (the map as the image's alpha channel).
        sign: ``positive``, ``negative``, ``absolute_value`` or ``all``. ``all`` is not
            allowed with ``masked_image`` and ``alpha_scaling``.
        plt_fig_axis: An existing ``(Figure, Axes)`` to draw on.
        outlier_perc: Percentage of the attribution mass clipped as outliers.
        cmap: Colour map; by default greens, reds, blues or red-white-green for ``all``.
        alpha_overlay: Opacity of the heat map in ``blended_heat_map``.
        show_colorbar: Add a colour bar under the plot.
        title: Axes title.
        fig_size: Size of a new figure, in inches.
        use_pyplot: Make a new figure with pyplot and show it when the backend is
            interactive; if False a bare ``matplotlib.figure.Figure`` is returned.

    Returns:
        ``(figure, axes)`` drawn on.

    Raises:
        ValueError: Unknown method or sign, a disallowed combination, a missing input or
            mismatched shapes.

    Example:
        >>> attr = np.zeros((4, 4, 3)); attr[:2, :2] = 1.0
        >>> fig, ax = visualize_image_attr(attr, sign="positive", use_pyplot=False)
        >>> ax.get_images()[0].get_array().shape
        (4, 4)
    """
    kind, sign_kind, attr_hwc, image_hwc = _check_inputs(attr, original_image, method, sign)
    norm, note = (None, None) if attr_hwc is None else _attr_map(attr_hwc, sign_kind, outlier_perc)
    pixels = None if image_hwc is None else _prepare_image(image_hwc)
    colours = default_cmap(sign_kind, cmap)
    figure, ax = make_figure(plt_fig_axis, use_pyplot, fig_size)
    if isinstance(ax, (list, tuple, np.ndarray)):
        ax = np.ravel(np.asarray(ax, dtype=object))[0]  # a grid was passed: use its first Axes
    try:
        hide_ticks(ax)
        mappable = _draw(ax, kind, norm, pixels, colours, alpha_overlay)
        if show_colorbar:
            add_colorbar(figure, ax, mappable)
        note_in_title(ax, title, None if kind is _M.original_image else note)
    except BaseException:
        _discard(figure, plt_fig_axis is None and use_pyplot)
        raise
    if plt_fig_axis is None:
        show_if_interactive(use_pyplot)
    return figure, ax


def _discard(figure: Figure, from_pyplot: bool) -> None:
    """Close a figure this module made through pyplot, so a failed call leaks nothing."""
    if from_pyplot:
        import matplotlib.pyplot as plt

        plt.close(figure)


def visualize_image_attr_multiple(
    attr: Any,
    original_image: Any,
    methods: Sequence[str],
    signs: Sequence[str],
    titles: Sequence[str] | None = None,
    fig_size: tuple[float, float] = (8, 6),
    use_pyplot: bool = True,
    **kwargs: Any,
) -> tuple[Figure, Axes | list[Axes]]:
    """Draw several visualisations of one attribution side by side (a 1 x k grid).

    Args:
        attr: Attribution, as for `visualize_image_attr`.
        original_image: The image, as for `visualize_image_attr` (may be None when every
            method is ``heat_map``).
        methods: One method per panel.
        signs: One sign per panel, same length as `methods`.
        titles: One title per panel, or None.
        fig_size: Size of the figure, in inches.
        use_pyplot: As for `visualize_image_attr`.
        **kwargs: Passed to every panel (``outlier_perc``, ``cmap``, ``alpha_overlay``,
            ``show_colorbar``).

    Returns:
        ``(figure, axes)``: one Axes for a single panel, otherwise a list of Axes.

    Example:
        >>> attr, image = np.random.rand(5, 5, 3), np.random.rand(5, 5, 3)
        >>> fig, axes = visualize_image_attr_multiple(
        ...     attr, image, ["original_image", "heat_map"], ["all", "positive"],
        ...     use_pyplot=False)
        >>> len(axes)
        2
    """
    if len(methods) == 0 or len(methods) != len(signs):
        raise ArgumentError(
            "methods and signs must be non-empty and of equal length; got "
            f"{len(methods)} methods and {len(signs)} signs"
        )
    if titles is not None and len(titles) != len(methods):
        raise ArgumentError(f"titles must have one entry per method; got {len(titles)}")
    for method, sign in zip(methods, signs):
        _check_inputs(attr, original_image, method, sign)
    figure, grid = make_figure(None, use_pyplot, fig_size, nrows=1, ncols=len(methods))
    axes: list[Axes] = list(np.atleast_1d(grid).ravel())
    try:
        for i, ax in enumerate(axes):
            visualize_image_attr(
                attr,
                original_image,
                methods[i],
                signs[i],
                plt_fig_axis=(figure, ax),
                title=None if titles is None else titles[i],
                use_pyplot=False,
                **kwargs,
            )
        figure.tight_layout()
    except BaseException:
        _discard(figure, use_pyplot)
        raise
    show_if_interactive(use_pyplot)
    return figure, axes[0] if len(axes) == 1 else axes


def _as_mask(mask: Any) -> np.ndarray:
    array = to_numpy(mask, "mask")
    if array.ndim != 2:
        raise ArgumentError(f"mask must be a 2D (H, W) array; got shape {array.shape}")
    return array.astype(bool)


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """Binary erosion with a 4-neighbour cross; pixels outside the image count as False."""
    eroded = mask
    for _ in range(steps):
        padded = np.pad(eroded, 1, constant_values=False)
        eroded = (
            padded[1:-1, 1:-1]
            & padded[:-2, 1:-1]
            & padded[2:, 1:-1]
            & padded[1:-1, :-2]
            & padded[1:-1, 2:]
        )
    return eroded


def draw_mask_border(
    ax: Axes,
    mask: Any,
    border_width: int = 1,
    border_color: str | Sequence[float] | np.ndarray = "black",
) -> None:
    """Outline a mask region on `ax`, drawing the border just inside the region.

    The border is the set of mask pixels removed by `border_width` steps of binary erosion
    (no scipy needed). An empty mask draws nothing.

    Args:
        ax: Axes to draw on (usually one already showing the image).
        mask: (H, W) boolean array or tensor.
        border_width: Border thickness in pixels, at least 1.
        border_color: A matplotlib colour (name, RGB or RGBA).

    Example:
        >>> from matplotlib.figure import Figure
        >>> ax = Figure().subplots()
        >>> mask = np.zeros((6, 6), dtype=bool); mask[1:5, 1:5] = True
        >>> draw_mask_border(ax, mask)
        >>> int(ax.get_images()[0].get_array()[..., 3].astype(bool).sum())
        12
    """
    region = _as_mask(mask)
    if isinstance(border_width, bool) or not isinstance(border_width, (int, np.integer)):
        raise TypeError(f"border_width must be an int; got {border_width!r}")
    if border_width < 1:
        raise ArgumentError(f"border_width must be at least 1; got {border_width}")
    if not region.any():
        return
    from matplotlib.colors import to_rgba

    rgba = np.asarray(to_rgba(border_color), dtype=np.float64)  # type: ignore[arg-type]
    border = region & ~_erode(region, int(border_width))
    ax.imshow(border[..., None] * rgba)  # (H, W, 4), transparent off the border


def draw_mask_legend(
    ax: Axes,
    mask: Any,
    label: str,
    fontsize: float = 10,
    text_color: str = "white",
    bbox_facecolor: str = "black",
    bbox_alpha: float = 0.6,
) -> None:
    """Write `label` at the centroid of a mask region, on a rounded box.

    Args:
        ax: Axes showing the image the mask belongs to.
        mask: (H, W) boolean array or tensor. An empty mask draws nothing.
        label: The text.
        fontsize: Font size.
        text_color: Text colour.
        bbox_facecolor: Box colour.
        bbox_alpha: Box opacity.

    Example:
        >>> from matplotlib.figure import Figure
        >>> ax = Figure().subplots()
        >>> draw_mask_legend(ax, np.eye(3, dtype=bool), "cat")
        >>> ax.texts[0].get_position(), ax.texts[0].get_text()
        ((1.0, 1.0), 'cat')
    """
    region = _as_mask(mask)
    if not region.any():
        return
    rows, cols = np.nonzero(region)
    ax.text(
        float(cols.mean()),
        float(rows.mean()),
        str(label),
        color=text_color,
        fontsize=fontsize,
        ha="center",
        va="center",
        bbox={"boxstyle": "round,pad=0.2", "facecolor": bbox_facecolor, "alpha": bbox_alpha},
    )
