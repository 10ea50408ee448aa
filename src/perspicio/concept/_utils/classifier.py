"""``captum.concept._utils.classifier``'s names, for ported code."""

from perspicio.concept.classifier import Classifier, DefaultClassifier, FastCAVClassifier

__all__ = ["Classifier", "DefaultClassifier", "FastCAVClassifier"]
