"""Captum's ``captum.concept._utils`` module paths, for ported code."""
