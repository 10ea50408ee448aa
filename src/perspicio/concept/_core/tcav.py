"""``captum.concept._core.tcav``'s name, for ported code."""

from perspicio.concept import TCAV

__all__ = ["TCAV"]
