"""Layer-wise relevance propagation: rules, composites and canonizers in one public module.

``LRP`` and ``LayerLRP`` are also in :mod:`perspicio.attr` (as in Captum), with the rules
Captum has (``PropagationRule``, ``EpsilonRule``, ``GammaRule``, ``Alpha1_Beta0_Rule``,
``IdentityRule``). This module adds the rules, composites and canonizers Captum lacks.

Example:
    >>> import torch
    >>> from perspicio.lrp import LRP, EpsilonPlusFlat, MergeBatchNorm, ResNetCanonizer
    >>> from perspicio.testing import TinyResNet
    >>> lrp = LRP(TinyResNet(), composite=EpsilonPlusFlat(),
    ...           canonizers=[MergeBatchNorm(), ResNetCanonizer()])
    >>> lrp.attribute(torch.rand(2, 3, 8, 8), target=0).shape
    torch.Size([2, 3, 8, 8])
"""

from perspicio.propagation.canonizers import (
    Canonizer,
    MergeBatchNorm,
    ResNetCanonizer,
    Sum,
    batchnorm_pairs,
)
from perspicio.propagation.composite import Composite
from perspicio.propagation.composites import (
    EpsilonGammaBox,
    EpsilonPlus,
    EpsilonPlusFlat,
    LayerMapComposite,
)
from perspicio.propagation.lrp import (
    LRP,
    SUPPORTED_LAYERS_WITH_RULES,
    SUPPORTED_NON_LINEAR_LAYERS,
    LayerLRP,
    lrp_rules,
)
from perspicio.propagation.lrp_rules import (
    Alpha1_Beta0_Rule,
    EpsilonRule,
    FlatRule,
    GammaRule,
    IdentityRule,
    PropagationRule,
    Term,
    WSquareRule,
    ZBoxRule,
    ZPlusRule,
)

__all__ = [
    "Alpha1_Beta0_Rule",
    "Canonizer",
    "Composite",
    "EpsilonGammaBox",
    "EpsilonPlus",
    "EpsilonPlusFlat",
    "EpsilonRule",
    "FlatRule",
    "GammaRule",
    "IdentityRule",
    "LRP",
    "LayerLRP",
    "LayerMapComposite",
    "MergeBatchNorm",
    "PropagationRule",
    "ResNetCanonizer",
    "SUPPORTED_LAYERS_WITH_RULES",
    "SUPPORTED_NON_LINEAR_LAYERS",
    "Sum",
    "Term",
    "WSquareRule",
    "ZBoxRule",
    "ZPlusRule",
    "batchnorm_pairs",
    "lrp_rules",
]
