"""perspicio: model interpretability for PyTorch."""
