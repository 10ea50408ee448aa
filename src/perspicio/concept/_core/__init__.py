"""Captum's ``captum.concept._core`` module paths, for ported code."""
