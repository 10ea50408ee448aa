"""``captum.concept._core.concept``'s names, for ported code."""

from perspicio.concept import Concept, ConceptInterpreter

__all__ = ["Concept", "ConceptInterpreter"]
