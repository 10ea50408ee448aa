"""Validation of user arguments: the one error class every rejected argument raises."""

from __future__ import annotations


class ArgumentError(ValueError, AssertionError):
    """A user argument was rejected: the message names the argument and what was wrong.

    It is a ``ValueError``, and also an ``AssertionError``, for code ported from Captum (which
    checks its arguments with ``assert``) that catches that.
    """
