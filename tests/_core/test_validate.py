from __future__ import annotations

import re

import numpy as np
import pytest

from perspicio import ArgumentError
from perspicio._core.validate import check_chunk_size, check_count, per_input_stdevs


@pytest.mark.parametrize(("value", "minimum"), [(1, 1), (7, 1), (2, 2), (np.int64(4), 1), (0, 0)])
def test_check_count_accepts_and_returns_an_int(value: object, minimum: int) -> None:
    out = check_count(value, "n_samples", minimum)
    assert out == value and type(out) is int


@pytest.mark.parametrize(("value", "minimum"), [(0, 1), (-1, 1), (1, 2)])
def test_check_count_rejects_small_values(value: int, minimum: int) -> None:
    with pytest.raises(ArgumentError, match=f"n_samples must be at least {minimum}, got {value}"):
        check_count(value, "n_samples", minimum)


@pytest.mark.parametrize("value", [2.5, 2.0, True, "3", None, np.float64(2)])
def test_check_count_rejects_non_ints(value: object) -> None:
    with pytest.raises(TypeError, match=re.escape(f"n_samples must be an int, got {value!r}")):
        check_count(value, "n_samples")


def test_argument_error_is_a_value_and_an_assertion_error() -> None:
    with pytest.raises(AssertionError):
        check_count(0, "n")
    with pytest.raises(ValueError):
        check_count(0, "n")


@pytest.mark.parametrize("value", [None, 1, 5, np.int32(3)])
def test_chunk_size_accepts(value: object) -> None:
    check_chunk_size(value, "internal_batch_size")


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_bad_chunk_sizes(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="internal_batch_size"):
        check_chunk_size(value, "internal_batch_size")


@pytest.mark.parametrize(
    ("stdevs", "n", "expected"),
    [
        (0.5, 2, (0.5, 0.5)),
        ((1, 0.0), 2, (1.0, 0.0)),
        ([0.1], 1, (0.1,)),
        (np.float32(2), 1, (2.0,)),
    ],
)
def test_per_input_stdevs(stdevs: object, n: int, expected: tuple[float, ...]) -> None:
    assert per_input_stdevs(stdevs, n) == expected


@pytest.mark.parametrize(
    ("stdevs", "error", "match"),
    [
        ((0.1, 0.2, 0.3), ArgumentError, "one value per input: got 3 for 2"),
        (-0.1, ArgumentError, "non-negative, got -0.1"),
        ("a", TypeError, "must be numbers, got 'a'"),
        (True, TypeError, "must be numbers, got True"),
    ],
)
def test_per_input_stdevs_rejects(stdevs: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        per_input_stdevs(stdevs, 2)
