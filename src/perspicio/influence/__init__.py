"""Influence of training examples on predictions (Captum's ``captum.influence`` names)."""

from __future__ import annotations

from perspicio.influence.base import DataInfluence, KMostInfluentialResults
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
    "KMostInfluentialResults",
    "NaiveInfluenceFunction",
    "NearestNeighbors",
    "SimilarityInfluence",
    "TorchNearestNeighbors",
    "TracInCP",
    "TracInCPBase",
    "TracInCPFast",
    "TracInCPFastRandProj",
]
