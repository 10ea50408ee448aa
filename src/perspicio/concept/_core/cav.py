"""``captum.concept._core.cav``'s name, for ported code."""

from perspicio.concept.cav import CAV

__all__ = ["CAV"]
