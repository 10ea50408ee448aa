"""Visualisation of attributions: images, time series and text (matplotlib is optional).

matplotlib is imported only when a plotting function runs, so ``import perspicio`` works
without it. The same names are available from `perspicio.attr.visualization`.
"""

from __future__ import annotations

from perspicio.viz.image import (
    draw_mask_border,
    draw_mask_legend,
    visualize_image_attr,
    visualize_image_attr_multiple,
)
from perspicio.viz.scale import (
    ImageVisualizationMethod,
    TimeseriesVisualizationMethod,
    VisualizeSign,
    cumulative_sum_threshold,
    default_cmap,
    filter_sign,
    normalize_attr,
)
from perspicio.viz.text import (
    HTMLText,
    VisualizationDataRecord,
    format_classname,
    format_special_tokens,
    format_tooltip,
    format_word_importances,
    token_color,
    visualize_text,
)
from perspicio.viz.timeseries import visualize_timeseries_attr

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
