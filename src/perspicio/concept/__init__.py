"""Concept-based interpretation: TCAV, FastCAV, significance tests and concept discovery.

Captum's ``captum.concept`` names (``Concept``, ``ConceptInterpreter``, ``CAV``, ``TCAV``,
``Classifier``, ``DefaultClassifier``), plus ``FastCAVClassifier``, the statistical test of
TCAV scores against random concepts (``significance_test``, ``TCAVSignificance``) with its
plot (``plot_tcav_scores``), and ``ConceptDiscovery`` (CRAFT-style non-negative
factorisation of activations). Captum's private module paths for the data iterators
(``perspicio.concept._utils.data_iterator``) and the others exist for ported code.
"""

from perspicio.concept.cav import CAV
from perspicio.concept.classifier import Classifier, DefaultClassifier, FastCAVClassifier
from perspicio.concept.concept import Concept, ConceptInterpreter
from perspicio.concept.discovery import ConceptDiscovery
from perspicio.concept.stats import TCAVSignificance, plot_tcav_scores, significance_test
from perspicio.concept.tcav import TCAV

__all__ = [
    "CAV",
    "TCAV",
    "Classifier",
    "Concept",
    "ConceptDiscovery",
    "ConceptInterpreter",
    "DefaultClassifier",
    "FastCAVClassifier",
    "TCAVSignificance",
    "plot_tcav_scores",
    "significance_test",
]
