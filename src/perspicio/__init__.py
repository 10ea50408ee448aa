"""perspicio: model interpretability for PyTorch."""

from perspicio._core.validate import ArgumentError

__all__ = ["ArgumentError"]
