"""Captum's ``captum.attr._utils.lrp_rules`` path: the LRP rule classes of :mod:`perspicio.lrp`."""

from perspicio.lrp import (
    Alpha1_Beta0_Rule,
    EpsilonRule,
    FlatRule,
    GammaRule,
    IdentityRule,
    PropagationRule,
    WSquareRule,
    ZBoxRule,
    ZPlusRule,
)

__all__ = [
    "Alpha1_Beta0_Rule",
    "EpsilonRule",
    "FlatRule",
    "GammaRule",
    "IdentityRule",
    "PropagationRule",
    "WSquareRule",
    "ZBoxRule",
    "ZPlusRule",
]
