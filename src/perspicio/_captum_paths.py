"""Captum module paths that perspicio serves too, so that ported code imports unchanged.

Each path is a thin module re-exporting public objects (never a copy). This table is the one
list of them: alias module -> {module the objects come from: their names}; an alias module
may take its namespace from it with :func:`exports`.
``tests/test_captum_paths.py`` imports every alias and checks that each name is the very
object of its source, and that the alias's ``__all__`` is exactly these names.
"""

from __future__ import annotations

import importlib
from typing import Any

CAPTUM_PATHS: dict[str, dict[str, tuple[str, ...]]] = {
    "perspicio.attr._core.lime": {
        "perspicio.attr": ("KernelShap", "Lime", "LimeBase"),
        "perspicio.perturbation.lime_functions": (
            "construct_feature_mask",
            "default_from_interp_rep_transform",
            "default_perturb_func",
            "get_exp_kernel_similarity_function",
        ),
    },
    "perspicio.attr._utils.lrp_rules": {
        "perspicio.lrp": (
            "Alpha1_Beta0_Rule",
            "EpsilonRule",
            "FlatRule",
            "GammaRule",
            "IdentityRule",
            "PropagationRule",
            "WSquareRule",
            "ZBoxRule",
            "ZPlusRule",
        ),
    },
    "perspicio._utils.models.linear_model": {
        "perspicio.models": (
            "LinearModel",
            "SGDLasso",
            "SGDLinearModel",
            "SGDLinearRegression",
            "SGDRidge",
            "SkLearnLasso",
            "SkLearnLinearModel",
            "SkLearnLinearRegression",
            "SkLearnRidge",
        ),
    },
    "perspicio.concept._core.cav": {"perspicio.concept": ("CAV",)},
    "perspicio.concept._core.concept": {"perspicio.concept": ("Concept", "ConceptInterpreter")},
    "perspicio.concept._core.tcav": {"perspicio.concept": ("TCAV",)},
    "perspicio.concept._utils.classifier": {
        "perspicio.concept": ("Classifier", "DefaultClassifier")
    },
    "perspicio.concept._utils.common": {"perspicio.concept.concept": ("concepts_to_str",)},
    "perspicio.insights.attr_vis": {"perspicio.insights": ("AttributionVisualizer", "Batch")},
    "perspicio.insights.attr_vis.features": {
        "perspicio.insights.features": (
            "BaseFeature",
            "EmptyFeature",
            "GeneralFeature",
            "ImageFeature",
            "TextFeature",
        ),
    },
}


def exports(alias: str) -> dict[str, Any]:
    """The objects the alias module ``alias`` re-exports, by name, taken from their sources."""
    return {
        name: getattr(importlib.import_module(source), name)
        for source, names in CAPTUM_PATHS[alias].items()
        for name in names
    }
