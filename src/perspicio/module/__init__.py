"""Modules to train with a model: stochastic gates for L0 feature selection (Captum's names)."""

from perspicio.module.stochastic_gates import (
    BinaryConcreteStochasticGates,
    GaussianStochasticGates,
    StochasticGatesBase,
)

__all__ = ["BinaryConcreteStochasticGates", "GaussianStochasticGates", "StochasticGatesBase"]
