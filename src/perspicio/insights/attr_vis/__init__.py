"""Captum's ``captum.insights.attr_vis`` path: :class:`AttributionVisualizer` and :class:`Batch`."""

from perspicio.insights import AttributionVisualizer, Batch
from perspicio.insights.attr_vis import features as features

__all__ = ["AttributionVisualizer", "Batch"]
