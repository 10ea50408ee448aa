"""Influence of training examples on predictions (Captum's ``captum.influence`` names).

Beyond Captum: :class:`EKFACInfluence` (Grosse et al., 2023) and an evaluation harness
(:func:`logistic_loo`, :func:`loo_correlation`, :func:`linear_datamodeling_score`).
``ArnoldiInfluenceFunction`` is exported here (Captum keeps it in a private module).

Differences from Captum worth knowing:

- ``k`` larger than the training data is an error (Captum returns every example).
- Checkpoints are read as tensors only (``weights_only=True`` or safetensors); an optional
  ``"learning_rate"`` entry is used (Captum's default loader fails on it). The user's weights
  are restored after every call (Captum leaves the last checkpoint loaded).
- ``TracInCPFastRandProj`` needs no ``annoy`` and supports ``self_influence``; its random
  projections and the Arnoldi start vector come from private generators (Captum reseeds the
  global RNG); for a seed, the projections are Captum's.
- The influence functions' top-k are the top of their ``k=None`` scores also with a
  ``test_loss_fn`` (Captum's top-k path embeds the test batch with ``loss_fn``).
- Cosine similarity with a zero activation is ``replace_nan`` itself.
- ``sample_wise_grads_per_batch`` only selects the accepted loss reductions: per-example
  gradients always come from ``torch.func`` (the results are the same).
"""

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
