"""Plots of an :class:`~perspicio.result.Explanation` (matplotlib imported lazily).

Dataset views: ``bar`` (mean |attribution| per feature) and ``beeswarm`` (every row's
attribution per feature, coloured by the feature's value). Single-example views:
``waterfall`` (from the base value to the output, one step per feature), ``image`` (heat map
over the input) and ``text`` (tokens shaded by attribution, as safe HTML).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from perspicio._core.validate import ArgumentError
from perspicio.attr.visualization import (
    VisualizationDataRecord,
    visualize_image_attr,
    visualize_text,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from perspicio.result.explanation import Explanation


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=size).subplots()


def _top(e: Explanation, k: int) -> np.ndarray:
    if k < 1:
        raise ArgumentError(f"k must be at least 1, got {k}")
    return np.argsort(-e.mean_abs().numpy(), kind="stable")[:k]


def bar(e: Explanation, k: int = 10, ax: Axes | None = None) -> Axes:
    """Horizontal bars of the ``k`` largest mean absolute attributions."""
    idx = _top(e, k)
    ax = _axes(ax, (6, 0.4 * len(idx) + 1))
    imp = e.mean_abs().numpy()[idx]
    ax.barh(range(len(idx))[::-1], imp, color="#1f77b4")
    ax.set_yticks(range(len(idx))[::-1], [e.names[i] for i in idx])
    ax.set_xlabel("mean |attribution|")
    return ax


def beeswarm(e: Explanation, k: int = 10, ax: Axes | None = None, seed: int = 0) -> Axes:
    """Every row's attribution of the ``k`` most important features (jittered vertically),
    coloured by the feature's value when the data were kept."""
    idx = _top(e, k)
    ax = _axes(ax, (7, 0.5 * len(idx) + 1))
    flat = e.flat().numpy()
    data = e.flat_data()
    rng = np.random.default_rng(seed)
    for pos, i in enumerate(idx):
        y = len(idx) - 1 - pos + rng.uniform(-0.3, 0.3, len(flat))
        colour = None if data is None else _unit(data[:, i].double().numpy())
        ax.scatter(flat[:, i], y, c=colour, cmap="coolwarm", s=8, vmin=0, vmax=1)
    ax.set_yticks(range(len(idx))[::-1], [e.names[i] for i in idx])
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("attribution")
    return ax


def _unit(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.full_like(x, 0.5)


def waterfall(e: Explanation, row: int = 0, k: int = 10, ax: Axes | None = None) -> Axes:
    """From the base value to the output of one example: the ``k`` largest attributions as
    steps, the rest as one step."""
    values = e.flat()[row].double().numpy()
    order = np.argsort(-np.abs(values), kind="stable")
    shown, rest = order[:k], values[order[k:]].sum()
    base = float(e.base_value[row]) if e.base_value is not None else 0.0
    steps = [(e.names[i], float(values[i])) for i in shown]
    if len(order) > k:
        steps.append((f"{len(order) - k} other features", float(rest)))
    ax = _axes(ax, (7, 0.45 * len(steps) + 1.5))
    start = base
    for pos, (_, v) in enumerate(steps):
        y = len(steps) - 1 - pos
        ax.barh(y, v, left=start, color="#2ca02c" if v >= 0 else "#d62728")
        ax.text(start + v, y, f" {v:+.3g}", va="center", fontsize=8)
        start += v
    ax.set_yticks(range(len(steps))[::-1], [n for n, _ in steps])
    ax.axvline(base, color="grey", lw=0.5, ls="--")
    ax.set_xlabel(f"base value {base:.3g} → output {start:.3g}")
    return ax


def image(e: Explanation, row: int = 0, input_index: int = 0, **kwargs: Any) -> Any:
    """:func:`~perspicio.viz.visualize_image_attr` of one example's ``(C, H, W)`` attribution,
    blended over the image when the data were kept."""
    attr = e.values[input_index][row]
    if attr.dim() != 3:
        raise ArgumentError(
            f"image plots need a (C, H, W) attribution per example, got shape {tuple(attr.shape)}"
        )
    hwc = attr.permute(1, 2, 0).double().numpy()
    if e.data is None:
        return visualize_image_attr(hwc, method="heat_map", use_pyplot=False, **kwargs)
    img = e.data[input_index][row].permute(1, 2, 0).double().numpy()
    kwargs.setdefault("method", "blended_heat_map")
    return visualize_image_attr(hwc, _unit(img), use_pyplot=False, **kwargs)


def text(e: Explanation, row: int = 0, tokens: list[str] | None = None) -> Any:
    """Safe HTML with each token of one example shaded by its attribution (summed over the
    embedding dimension when the attribution has one)."""
    values = e.values[0][row]
    per_token = values.reshape(values.shape[0], -1).sum(1) if values.dim() > 1 else values
    words = tokens if tokens is not None else list(e.names[: len(per_token)])
    if len(words) != len(per_token):
        raise ArgumentError(f"tokens has {len(words)} entries for {len(per_token)} positions")
    target = None if e.target is None else e.target[row].tolist()
    record = VisualizationDataRecord(
        per_token,
        float(e.output[row]) if e.output is not None else 0.0,
        target,
        target,
        target,
        float(per_token.sum()),
        words,
        0.0,
    )
    return visualize_text([record], legend=True)
