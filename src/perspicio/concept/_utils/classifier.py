"""``captum.concept._utils.classifier``'s names, for ported code."""

from perspicio.concept import Classifier, DefaultClassifier

__all__ = ["Classifier", "DefaultClassifier"]
