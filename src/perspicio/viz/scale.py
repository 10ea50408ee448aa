"""Scaling of attribution maps for display: sign filtering, outlier clipping, colour maps.

Everything here is a pure function of numpy arrays, except `default_cmap`, which builds
matplotlib colour maps (matplotlib is imported inside it, never at module import).
"""

from __future__ import annotations

from enum import Enum
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from perspicio._core.validate import ArgumentError

if TYPE_CHECKING:
    from matplotlib.colors import Colormap

__all__ = [
    "ImageVisualizationMethod",
    "TimeseriesVisualizationMethod",
    "VisualizeSign",
    "cumulative_sum_threshold",
    "default_cmap",
    "filter_sign",
    "normalize_attr",
    "parse_choice",
    "to_numpy",
]


class ImageVisualizationMethod(Enum):
    """How `visualize_image_attr` draws an attribution map."""

    heat_map = 1
    blended_heat_map = 2
    original_image = 3
    masked_image = 4
    alpha_scaling = 5


class TimeseriesVisualizationMethod(Enum):
    """How `visualize_timeseries_attr` draws attributions over a time series."""

    overlay_individual = 1
    overlay_combined = 2
    colored_graph = 3


class VisualizeSign(Enum):
    """Which attribution values are shown."""

    positive = 1
    absolute_value = 2
    negative = 3
    all = 4


_E = TypeVar("_E", bound=Enum)


def parse_choice(value: str | Enum, choices: type[_E], arg: str) -> _E:
    """Turn a string (or an enum member) into a member of `choices`.

    Args:
        value: The user's value, e.g. ``"heat_map"``.
        choices: The enum class the value must name a member of.
        arg: The argument name, used in the error message.

    Returns:
        The enum member.

    Raises:
        ValueError: If `value` names no member; the message lists the allowed values.

    Example:
        >>> parse_choice("positive", VisualizeSign, "sign")
        <VisualizeSign.positive: 1>
    """
    if isinstance(value, choices):
        return value
    if isinstance(value, str) and value in choices.__members__:
        return choices[value]
    allowed = ", ".join(repr(name) for name in choices.__members__)
    raise ArgumentError(f"{arg} must be one of {allowed}; got {value!r}")


def to_numpy(value: Any, name: str) -> np.ndarray:
    """Convert a numpy array, torch tensor or nested sequence to a numpy array.

    Tensors are detached and moved to the CPU first.

    Raises:
        TypeError: If `value` cannot be read as a numeric array.
    """
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array or a tensor; got {type(value).__name__}") from err
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise TypeError(f"{name} must hold numbers; got dtype {array.dtype}")
    return array


def cumulative_sum_threshold(values: np.ndarray, percentile: float) -> float:
    """The smallest value at which the sorted cumulative sum reaches `percentile` % of the total.

    With ``percentile = 100 - outlier_perc`` the values above the threshold together make
    up at most `outlier_perc` % of the total mass: those are the outliers that get clipped.

    Args:
        values: Non-negative values, any shape.
        percentile: In [0, 100].

    Returns:
        The threshold (0.0 for an empty or all-zero array).

    Raises:
        ValueError: If `percentile` is outside [0, 100] or `values` has negative entries.

    Example:
        >>> float(cumulative_sum_threshold(np.array([1.0, 1.0, 1.0, 97.0]), 50))
        97.0
        >>> float(cumulative_sum_threshold(np.array([1.0, 1.0, 1.0, 97.0]), 2))
        1.0
    """
    if not 0 <= percentile <= 100:
        raise ArgumentError(f"percentile must be in [0, 100]; got {percentile}")
    flat = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if flat.size == 0:
        return 0.0
    if flat[0] < 0:
        raise ArgumentError(f"values must be non-negative; found {flat[0]}")
    cumulative = np.cumsum(flat)
    index = int(np.searchsorted(cumulative, cumulative[-1] * percentile / 100.0, side="left"))
    return float(flat[min(index, flat.size - 1)])


def filter_sign(attr: np.ndarray, sign: str | VisualizeSign) -> np.ndarray:
    """Keep the part of `attr` that `sign` asks for.

    ``positive`` zeroes negative values, ``negative`` zeroes positive values (the kept values
    stay negative), ``absolute_value`` takes magnitudes, ``all`` keeps everything.

    Example:
        >>> filter_sign(np.array([-2.0, 0.0, 3.0]), "negative")
        array([-2.,  0.,  0.])
    """
    kind = parse_choice(sign, VisualizeSign, "sign")
    attr = np.asarray(attr)
    if kind is VisualizeSign.positive:
        return np.maximum(attr, 0)
    if kind is VisualizeSign.negative:
        return np.minimum(attr, 0)
    if kind is VisualizeSign.absolute_value:
        return np.abs(attr)
    return attr.copy()


def normalize_attr(
    attr: np.ndarray,
    sign: str | VisualizeSign,
    outlier_perc: float = 2,
    reduction_axis: int | None = None,
) -> np.ndarray:
    """Filter `attr` by sign and scale it into [-1, 1] with outliers clipped.

    The scale is the cumulative-sum threshold of the magnitudes at ``100 - outlier_perc``:
    values whose magnitudes make up the top `outlier_perc` % of the total saturate at 1.
    For ``negative`` the result is in [0, 1] (larger means more negative); for ``all`` it is
    in [-1, 1]; otherwise in [0, 1]. An attribution with nothing left after filtering (for
    example all zeros) gives an all-zero map instead of dividing by zero.

    Args:
        attr: Attribution values, any shape.
        sign: One of ``positive``, ``negative``, ``absolute_value``, ``all``.
        outlier_perc: Percentage of the total mass treated as outliers, in [0, 100].
        reduction_axis: If given, `attr` is summed over this axis first (e.g. channels).

    Example:
        >>> normalize_attr(np.array([0.0, 1.0, 2.0, -4.0]), "all", outlier_perc=0)
        array([ 0.  ,  0.25,  0.5 , -1.  ])
        >>> normalize_attr(np.array([0.0, 1.0, 2.0, -4.0]), "negative", outlier_perc=0)
        array([0., 0., 0., 1.])
    """
    if not 0 <= outlier_perc <= 100:
        raise ArgumentError(f"outlier_perc must be in [0, 100]; got {outlier_perc}")
    values = np.asarray(attr, dtype=np.float64)
    if reduction_axis is not None:
        values = values.sum(axis=reduction_axis)
    kept = filter_sign(values, sign)
    magnitude = np.abs(kept)
    threshold = cumulative_sum_threshold(magnitude, 100.0 - outlier_perc)
    if threshold <= 0:
        nonzero = magnitude[magnitude > 0]
        if nonzero.size == 0:
            return np.zeros_like(kept)
        # outlier_perc == 100: every non-zero value is an outlier and saturates.
        threshold = float(nonzero.min())
    if parse_choice(sign, VisualizeSign, "sign") is VisualizeSign.negative:
        threshold = -threshold
    # `+ 0.0` turns the -0.0 of a negative threshold into 0.0.
    return np.clip(kept / threshold, -1.0, 1.0) + 0.0


# Colour stops (position, RGB) of the default maps; white is "no attribution".
_CMAP_STOPS: dict[VisualizeSign, tuple[tuple[float, tuple[float, float, float]], ...]] = {
    VisualizeSign.all: (
        (0.0, (0.75, 0.05, 0.05)),
        (0.5, (1.0, 1.0, 1.0)),
        (1.0, (0.05, 0.55, 0.15)),
    ),
    VisualizeSign.positive: ((0.0, (1.0, 1.0, 1.0)), (1.0, (0.0, 0.42, 0.16))),
    VisualizeSign.negative: ((0.0, (1.0, 1.0, 1.0)), (1.0, (0.62, 0.0, 0.05))),
    VisualizeSign.absolute_value: ((0.0, (1.0, 1.0, 1.0)), (1.0, (0.03, 0.25, 0.58))),
}


@cache
def _default_map(kind: VisualizeSign) -> Colormap:
    from matplotlib.colors import LinearSegmentedColormap

    stops = _CMAP_STOPS[kind]
    # An odd number of entries puts pure white exactly at the centre of the diverging map.
    return LinearSegmentedColormap.from_list(f"perspicio_{kind.name}", list(stops), N=255)


def default_cmap(
    sign: str | VisualizeSign, cmap: str | Colormap | None = None
) -> tuple[Colormap, float, float]:
    """The colour map and value range used to draw a map normalised for `sign`.

    ``all`` uses a diverging red-white-green map over [-1, 1]; ``positive`` greens,
    ``negative`` reds and ``absolute_value`` blues, each over [0, 1], starting at white.

    Args:
        sign: The sign the map was normalised for.
        cmap: A user colour map (name or object) to use instead of the default.

    Returns:
        ``(colormap, vmin, vmax)``.

    Example:
        >>> colormap, vmin, vmax = default_cmap("all")
        >>> (vmin, vmax), [float(c) for c in colormap(0.5)]
        ((-1.0, 1.0), [1.0, 1.0, 1.0, 1.0])
    """
    kind = parse_choice(sign, VisualizeSign, "sign")
    vmin = -1.0 if kind is VisualizeSign.all else 0.0
    if cmap is None:
        return _default_map(kind), vmin, 1.0
    if isinstance(cmap, str):
        import matplotlib

        try:
            return matplotlib.colormaps[cmap], vmin, 1.0
        except KeyError as err:
            raise ArgumentError(f"cmap {cmap!r} is not a known matplotlib colour map") from err
    return cmap, vmin, 1.0
