"""Explanation quality metrics: Captum's two (``infidelity``, ``sensitivity_max``) and the
ones practitioners use (faithfulness, robustness, randomisation, complexity, localisation),
plus :func:`evaluate`, which scores several methods on several metrics in one table."""

from perspicio.metrics.complexity import complexity, sparseness
from perspicio.metrics.evaluate import (
    HIGHER_IS_BETTER,
    METRICS,
    MetricInput,
    evaluate,
    format_table,
)
from perspicio.metrics.faithfulness import (
    Curve,
    deletion_curve,
    faithfulness_correlation,
    insertion_curve,
)
from perspicio.metrics.infidelity import infidelity, infidelity_perturb_func_decorator
from perspicio.metrics.localisation import (
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)
from perspicio.metrics.randomisation import model_parameter_randomisation
from perspicio.metrics.road import road
from perspicio.metrics.sensitivity import default_perturb_func, sensitivity_avg, sensitivity_max

__all__ = [
    "HIGHER_IS_BETTER",
    "METRICS",
    "Curve",
    "MetricInput",
    "complexity",
    "default_perturb_func",
    "deletion_curve",
    "evaluate",
    "faithfulness_correlation",
    "format_table",
    "infidelity",
    "infidelity_perturb_func_decorator",
    "insertion_curve",
    "model_parameter_randomisation",
    "pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "road",
    "sensitivity_avg",
    "sensitivity_max",
    "sparseness",
]
