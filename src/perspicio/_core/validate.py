"""Validation of user arguments: the one error class, and the checks shared by every family.

Every rejected user argument raises :class:`ArgumentError` (a bad value) or ``TypeError`` (a
wrong type), with a message naming the argument and the offending value, before any model
evaluation. Checks used by more than one algorithm live here; a check that only one algorithm
needs stays next to it.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any


class ArgumentError(ValueError, AssertionError):
    """A user argument was rejected: the message names the argument and what was wrong.

    It is a ``ValueError``, and also an ``AssertionError``, for code ported from Captum (which
    checks its arguments with ``assert``) that catches that.
    """


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer as Captum accepts it: a Python int or a NumPy integer
    (``np.int64(8)``), not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def plain_ints(value: Any) -> Any:
    """``value`` with NumPy integers made Python ints, also inside tuples and lists (targets,
    neuron selectors, window shapes); anything else is returned unchanged."""
    if is_int(value) and not isinstance(value, int):
        return int(value)
    if isinstance(value, tuple | list):
        return type(value)(plain_ints(v) for v in value)
    return value


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """A count (samples, steps, ...): an int of at least ``minimum``, returned as an ``int``.

    numpy integers are accepted, as Captum accepts them.

    Example:
        >>> from perspicio._core.validate import check_count
        >>> check_count(3, "n_samples")
        3
        >>> check_count(0, "n_samples")
        Traceback (most recent call last):
        ...
        perspicio._core.validate.ArgumentError: n_samples must be at least 1, got 0
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ArgumentError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def check_chunk_size(value: Any, name: str) -> None:
    """A batching knob: ``None`` (no limit) or a positive int."""
    if value is not None:
        check_count(value, name)


def per_input_stdevs(stdevs: Any, n_inputs: int, name: str = "stdevs") -> tuple[float, ...]:
    """One non-negative standard deviation per input (a single number is shared by all)."""
    values = stdevs if isinstance(stdevs, tuple | list) else (stdevs,) * n_inputs
    if len(values) != n_inputs:
        raise ArgumentError(
            f"{name} must give one value per input: got {len(values)} for {n_inputs}"
        )
    for v in values:
        if isinstance(v, bool) or not isinstance(v, Real):
            raise TypeError(f"{name} must be numbers, got {v!r}")
        if v < 0:
            raise ArgumentError(f"{name} must be non-negative, got {v}")
    return tuple(float(v) for v in values)
