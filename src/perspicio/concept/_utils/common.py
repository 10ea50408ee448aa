"""``captum.concept._utils.common``'s name, for ported code."""

from perspicio.concept.concept import concepts_to_str

__all__ = ["concepts_to_str"]
