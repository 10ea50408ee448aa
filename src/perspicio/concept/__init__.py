"""Concept-based interpretation: TCAV, FastCAV, significance tests and concept discovery.

Captum's ``captum.concept`` names (``Concept``, ``ConceptInterpreter``, ``CAV``, ``TCAV``,
``Classifier``, ``DefaultClassifier``), plus ``FastCAVClassifier``, the statistical test of
TCAV scores against random concepts with its plot, and ``ConceptDiscovery`` (CRAFT-style
non-negative factorisation of activations).
"""

from perspicio.concept.cav import CAV
from perspicio.concept.classifier import Classifier, DefaultClassifier, FastCAVClassifier
from perspicio.concept.concept import Concept, ConceptInterpreter
from perspicio.concept.tcav import TCAV

__all__ = [
    "CAV",
    "TCAV",
    "Classifier",
    "Concept",
    "ConceptInterpreter",
    "DefaultClassifier",
    "FastCAVClassifier",
]
