"""Tiny seeded models and data for tests, doctests, demos and benchmarks."""

from perspicio.testing.models import (
    BasicLinearModel,
    ConvNet,
    MultiInputModel,
    ReLUMLP,
    ReusedReLUNet,
    TinyResNet,
)
from perspicio.testing.shapes import ShapesCNN, ShapesData, make_shapes

__all__ = [
    "BasicLinearModel",
    "ConvNet",
    "MultiInputModel",
    "ReLUMLP",
    "ReusedReLUNet",
    "ShapesCNN",
    "ShapesData",
    "TinyResNet",
    "make_shapes",
]
