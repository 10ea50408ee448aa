"""Captum's concept module paths re-export the very public objects."""

from __future__ import annotations

import importlib

import pytest

import perspicio.concept as public
from perspicio.concept import concept as concept_module

PATHS = {
    "perspicio.concept._core.cav": (public, ("CAV",)),
    "perspicio.concept._core.concept": (public, ("Concept", "ConceptInterpreter")),
    "perspicio.concept._core.tcav": (public, ("TCAV",)),
    "perspicio.concept._utils.classifier": (public, ("Classifier", "DefaultClassifier")),
    "perspicio.concept._utils.common": (concept_module, ("concepts_to_str",)),
}


@pytest.mark.parametrize("alias", sorted(PATHS))
def test_alias_reexports(alias: str) -> None:
    module = importlib.import_module(alias)
    source, names = PATHS[alias]
    assert set(module.__all__) == set(names)
    for name in names:
        assert getattr(module, name) is getattr(source, name)
