"""Attribution visualisation, importable as ``perspicio.attr.visualization``.

A real module (``from perspicio.attr.visualization import visualize_image_attr`` works);
the implementations live in `perspicio.viz`.
"""

from __future__ import annotations

from perspicio.viz import (
    HTMLText,
    ImageVisualizationMethod,
    TimeseriesVisualizationMethod,
    VisualizationDataRecord,
    VisualizeSign,
    cumulative_sum_threshold,
    default_cmap,
    draw_mask_border,
    draw_mask_legend,
    filter_sign,
    format_classname,
    format_special_tokens,
    format_tooltip,
    format_word_importances,
    normalize_attr,
    token_color,
    visualize_image_attr,
    visualize_image_attr_multiple,
    visualize_text,
    visualize_timeseries_attr,
)

__all__ = [
    "HTMLText",
    "ImageVisualizationMethod",
    "TimeseriesVisualizationMethod",
    "VisualizationDataRecord",
    "VisualizeSign",
    "cumulative_sum_threshold",
    "default_cmap",
    "draw_mask_border",
    "draw_mask_legend",
    "filter_sign",
    "format_classname",
    "format_special_tokens",
    "format_tooltip",
    "format_word_importances",
    "normalize_attr",
    "token_color",
    "visualize_image_attr",
    "visualize_image_attr_multiple",
    "visualize_text",
    "visualize_timeseries_attr",
]
