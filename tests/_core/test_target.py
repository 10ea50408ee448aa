from __future__ import annotations

from typing import Any

import pytest
import torch

from perspicio._core.target import normalize_target, select_target

OUT = torch.arange(24.0).reshape(4, 6)


def pick(target: Any, out: torch.Tensor = OUT) -> list[float]:
    return select_target(out, normalize_target(target, len(out))).tolist()


def test_int_and_scalar_tensor() -> None:
    assert pick(2) == [2, 8, 14, 20]
    assert pick(torch.tensor(2)) == [2, 8, 14, 20]
    assert pick(-1) == [5, 11, 17, 23]


def test_per_example_forms() -> None:
    assert pick([0, 1, 2, 3]) == [0, 7, 14, 21]
    assert pick(torch.tensor([0, 1, 2, 3])) == [0, 7, 14, 21]


def test_tuple_and_list_of_tuples_on_3d_outputs() -> None:
    out = torch.arange(24.0).reshape(2, 3, 4)
    assert pick((1, 2), out) == [6, 18]
    assert pick([(0, 0), (2, 3)], out) == [0, 23]


def test_none_on_single_output_and_scalar() -> None:
    assert pick(None, torch.arange(3.0)) == [0, 1, 2]
    assert pick(None, torch.arange(3.0).reshape(3, 1)) == [0, 1, 2]
    assert select_target(torch.tensor(5.0), normalize_target(None, 3)).item() == 5.0


def test_callable_target() -> None:
    assert pick(lambda o: o[:, 1:3].sum(1)) == [3, 15, 27, 39]


def test_repeat_and_rows() -> None:
    t = normalize_target([1, 2], 2)
    assert t.repeat(3).per_example is not None
    assert t.repeat(3).per_example.flatten().tolist() == [1, 2, 1, 2, 1, 2]  # type: ignore[union-attr]
    assert t.repeat(2, interleave=True).per_example.flatten().tolist() == [1, 1, 2, 2]  # type: ignore[union-attr]
    assert normalize_target(3, 2).repeat(5).index == (3,)


@pytest.mark.parametrize(
    ("target", "error", "match"),
    [
        ([0, 1], ValueError, "target gives 2 indices but the batch has 4 examples"),
        (torch.tensor([0.5, 1.0]), TypeError, "integer indices"),
        (torch.zeros(2, 2, dtype=torch.long), ValueError, "1-D"),
        (True, TypeError, "not bool"),
        ("a", TypeError, "got str"),
        ([0, "x", 1, 2], TypeError, "indices must be ints"),
    ],
)
def test_rejected_before_any_model_call(target: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        normalize_target(target, 4)


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (6, "target index 6 is out of range"),
        (-7, "target index -7 is out of range"),
        ([0, 1, 9, 2], "target index 9 is out of range"),
        ((1, 2), "target has 2 indices"),
        (None, "give a target"),
        (lambda o: o.sum(), "callable target must return one score per example"),
    ],
)
def test_rejected_against_the_output(target: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pick(target)


def test_non_tensor_output() -> None:
    with pytest.raises(TypeError, match="must return a tensor, got dict"):
        select_target({"logits": OUT}, normalize_target(0, 4))  # type: ignore[arg-type]
