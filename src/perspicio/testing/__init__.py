"""Tiny seeded models and data for tests, doctests, demos and benchmarks."""

from perspicio.testing.models import (
    BasicLinearModel,
    ConvNet,
    MultiInputModel,
    ReLUMLP,
    ReusedReLUNet,
    TinyResNet,
)

__all__ = [
    "BasicLinearModel",
    "ConvNet",
    "MultiInputModel",
    "ReLUMLP",
    "ReusedReLUNet",
    "TinyResNet",
]
