"""Validation of user arguments: the one error class every rejected argument raises."""

from __future__ import annotations

import numbers
from typing import Any


class ArgumentError(ValueError, AssertionError):
    """A user argument was rejected: the message names the argument and what was wrong.

    It is a ``ValueError``, and also an ``AssertionError``, for code ported from Captum (which
    checks its arguments with ``assert``) that catches that.
    """


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer as Captum accepts it: a Python int or a NumPy integer
    (``np.int64(8)``), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def plain_ints(value: Any) -> Any:
    """``value`` with NumPy integers made Python ints, also inside tuples and lists (targets,
    neuron selectors, window shapes); anything else is returned unchanged."""
    if is_int(value) and not isinstance(value, int):
        return int(value)
    if isinstance(value, tuple | list):
        return type(value)(plain_ints(v) for v in value)
    return value
