"""``captum.concept._core.tcav``'s name, for ported code."""

from perspicio.concept.tcav import TCAV

__all__ = ["TCAV"]
