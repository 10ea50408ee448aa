"""Every Captum import path perspicio serves re-exports the very public objects."""

from __future__ import annotations

import importlib

import pytest

from perspicio._captum_paths import CAPTUM_PATHS


@pytest.mark.parametrize("alias", sorted(CAPTUM_PATHS))
def test_alias_reexports_the_public_objects(alias: str) -> None:
    module = importlib.import_module(alias)
    expected = {name for names in CAPTUM_PATHS[alias].values() for name in names}
    assert set(module.__all__) == expected
    for source, names in CAPTUM_PATHS[alias].items():
        public = importlib.import_module(source)
        for name in names:
            assert getattr(module, name) is getattr(public, name), f"{alias}.{name}"


def test_ported_imports_work() -> None:
    from perspicio._utils.models.linear_model import SkLearnLasso
    from perspicio.attr._utils.lrp_rules import EpsilonRule
    from perspicio.insights.attr_vis import features

    assert features.ImageFeature.__module__ == "perspicio.insights.features"
    assert EpsilonRule.__module__ == "perspicio.propagation.lrp_rules"
    assert SkLearnLasso.__module__ == "perspicio.models"
