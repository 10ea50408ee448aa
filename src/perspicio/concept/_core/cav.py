"""``captum.concept._core.cav``'s name, for ported code."""

from perspicio.concept import CAV

__all__ = ["CAV"]
