"""Captum's private module paths that ported code imports from (``captum.attr._core``)."""
