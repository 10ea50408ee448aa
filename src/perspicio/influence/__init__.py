"""Influence of training examples on predictions (Captum's ``captum.influence`` names)."""

from __future__ import annotations

from perspicio.influence.base import DataInfluence, KMostInfluentialResults
from perspicio.influence.ekfac import EKFACInfluence
from perspicio.influence.evaluation import (
    linear_datamodeling_score,
    logistic_loo,
    loo_correlation,
    spearman,
)
from perspicio.influence.fast import (
    NearestNeighbors,
    TorchNearestNeighbors,
    TracInCPFast,
    TracInCPFastRandProj,
)
from perspicio.influence.functions import ArnoldiInfluenceFunction, NaiveInfluenceFunction
from perspicio.influence.similarity import SimilarityInfluence
from perspicio.influence.tracincp import TracInCP, TracInCPBase

__all__ = [
    "ArnoldiInfluenceFunction",
    "DataInfluence",
    "EKFACInfluence",
    "KMostInfluentialResults",
    "NaiveInfluenceFunction",
    "NearestNeighbors",
    "SimilarityInfluence",
    "TorchNearestNeighbors",
    "TracInCP",
    "TracInCPBase",
    "TracInCPFast",
    "TracInCPFastRandProj",
    "linear_datamodeling_score",
    "logistic_loo",
    "loo_correlation",
    "spearman",
]
