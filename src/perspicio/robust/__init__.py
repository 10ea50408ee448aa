"""Adversarial robustness with Captum's names: attacks and robustness metrics."""

from perspicio.robust.apgd import APGD
from perspicio.robust.comparator import AttackComparator
from perspicio.robust.cw import CarliniWagnerL2
from perspicio.robust.explanation import AttributionAttack, topk_intersection
from perspicio.robust.fgsm import FGSM
from perspicio.robust.min_param import MinParamPerturbation
from perspicio.robust.perturbation import Perturbation
from perspicio.robust.pgd import PGD

__all__ = [
    "APGD",
    "FGSM",
    "PGD",
    "AttackComparator",
    "AttributionAttack",
    "CarliniWagnerL2",
    "MinParamPerturbation",
    "Perturbation",
    "topk_intersection",
]
