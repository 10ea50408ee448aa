"""Captum's ``captum.insights.attr_vis.features`` path: the features of the insights explorer."""

from perspicio.insights.features import (
    BaseFeature,
    EmptyFeature,
    GeneralFeature,
    ImageFeature,
    TextFeature,
)

__all__ = ["BaseFeature", "EmptyFeature", "GeneralFeature", "ImageFeature", "TextFeature"]
