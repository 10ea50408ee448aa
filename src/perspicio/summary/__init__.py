"""Running summaries (mean, variance, min, max, ...) of attributions, overall and per class.

Also exported from `perspicio.attr` under Captum's names.
"""

from __future__ import annotations

from perspicio.summary.stats import (
    MSE,
    CommonStats,
    Count,
    Max,
    Mean,
    Min,
    Stat,
    StatValue,
    StdDev,
    Sum,
    Var,
)
from perspicio.summary.summarizer import ClassSummarizer, Summarizer, SummarizerSingleTensor

__all__ = [
    "MSE",
    "ClassSummarizer",
    "CommonStats",
    "Count",
    "Max",
    "Mean",
    "Min",
    "Stat",
    "StatValue",
    "StdDev",
    "Sum",
    "Summarizer",
    "SummarizerSingleTensor",
    "Var",
]
