"""Captum's ``captum.attr._utils.lrp_rules`` path: the LRP rule classes of :mod:`perspicio.lrp`.

Its names are those :data:`perspicio._captum_paths.CAPTUM_PATHS` lists for this path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perspicio._captum_paths import exports

if TYPE_CHECKING:  # the same objects, with their types, for static checkers
    from perspicio.lrp import *  # noqa: F403

_objects = exports(__name__)
globals().update(_objects)
__all__ = list(_objects)
