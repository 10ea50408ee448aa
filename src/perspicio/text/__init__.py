"""Helpers for text models: interpretable embedding layers and token reference baselines."""
