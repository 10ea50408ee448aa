"""The machinery of methods that wrap methods: PerExample, flatten, reduce_samples."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from perspicio._core.wrapped import PerExample, flatten, reduce_samples


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _same(a: Any, b: Any) -> None:
    """Equal values of equal types, recursively."""
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _same(a[key], b[key])
    else:
        assert a == b


def _kwargs(n: int) -> dict[str, Any]:
    g = _gen()
    return {
        "target": list(range(n)),
        "additional_forward_args": (torch.randn(n, 2, generator=g), 3, torch.randn(5)),
        "baselines": (torch.randn(n, 4, generator=g), torch.zeros(1, 4), 0.5),
        "feature_mask": torch.arange(n * 4).reshape(n, 4),
        "n_steps": 8,
        "other": torch.randn(n, 3, generator=g),  # not a per-example key: passed as is
    }


def _reference(kwargs: dict[str, Any], n: int, index: list[int]) -> dict[str, Any]:
    """The per-example values picked by ``index``, written out by hand."""
    out = dict(kwargs)
    out["target"] = [kwargs["target"][i] for i in index]
    a, b, c = kwargs["additional_forward_args"]
    out["additional_forward_args"] = (a[index], b, c)
    b0, b1, b2 = kwargs["baselines"]
    shared = n == 1  # one baseline row is shared by every example
    out["baselines"] = (b0 if shared else b0[index], b1, b2)
    out["feature_mask"] = kwargs["feature_mask"] if shared else kwargs["feature_mask"][index]
    return out


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_repeat_matches_hand_written_expansion(n: int, k: int) -> None:
    kwargs = _kwargs(n)
    index = [i for i in range(n) for _ in range(k)]  # each example k times in place
    _same(PerExample(kwargs, n).repeat(k), _reference(kwargs, n, index))


@pytest.mark.parametrize(("start", "stop"), [(0, 4), (1, 3), (2, 3)])
def test_rows_match_hand_written_slices(start: int, stop: int) -> None:
    kwargs = _kwargs(4)
    _same(PerExample(kwargs, 4).rows(start, stop), _reference(kwargs, 4, list(range(start, stop))))


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (None, None),
        (1, 1),
        ((0, 1), (0, 1)),  # one multi-dimensional target for every example
        (torch.tensor(2), torch.tensor(2)),
        (torch.tensor([2]), torch.tensor([2])),  # one element: shared, as in Captum
        (torch.tensor([2, 0]), torch.tensor([2, 2, 0, 0])),
        ([(0, 1), (1, 0)], [(0, 1), (0, 1), (1, 0), (1, 0)]),
    ],
)
def test_target_forms(target: Any, expected: Any) -> None:
    _same(PerExample({"target": target}, 2).repeat(2)["target"], expected)


def test_absent_keys_and_extra_keys() -> None:
    x = torch.arange(4.0).reshape(2, 2)
    assert PerExample({}, 2).repeat(3) == {}
    out = PerExample({"mask": x}, 2, keys=("mask",)).repeat(2)
    _same(out["mask"], x.repeat_interleave(2, 0))


def test_the_users_arguments_are_left_alone() -> None:
    kwargs = _kwargs(2)
    before = {k: v for k, v in kwargs.items()}
    PerExample(kwargs, 2).repeat(3)
    _same(kwargs, before)


@pytest.mark.parametrize(
    "result",
    [
        torch.ones(2),
        (torch.ones(2), torch.zeros(3)),
        [torch.ones(1)],
        ((torch.ones(2), (torch.zeros(1),)), torch.ones(3)),
        ((), torch.ones(1)),
    ],
)
def test_flatten_then_rebuild_is_the_identity(result: Any) -> None:
    flat, structure = flatten(result)
    assert all(isinstance(t, torch.Tensor) for t in flat)
    _same(structure.rebuild(flat), result)
    doubled = structure.rebuild([2 * t for t in flat])
    _same(flatten(doubled)[0], [2 * t for t in flat])


def test_flatten_rejects_other_values() -> None:
    with pytest.raises(TypeError, match="got dict"):
        flatten((torch.ones(1), {"a": torch.ones(1)}))


@pytest.mark.parametrize("per_chunk", [None, 1, 2, 3, 7, 50])
def test_reduce_samples_equals_reducing_all_samples_at_once(per_chunk: int | None) -> None:
    values = torch.randn(3, 7, 2, generator=_gen(1))  # (N, samples, ...)
    seen: list[tuple[int, int]] = []

    def run(a: int, b: int) -> Any:
        seen.append((a, b))
        v = values[:, a:b]
        return v, (v, [v]), v

    total, (top, [also_top]), kept = reduce_samples(7, per_chunk, run, how=("sum", "max", "cat"))
    torch.testing.assert_close(total, values.sum(1))
    _same(top, values.max(1).values)
    _same(also_top, values.max(1).values)
    _same(kept, values)
    assert [i for a, b in seen for i in range(a, b)] == list(range(7))
    assert all(b - a <= (per_chunk or 7) for a, b in seen)


def test_reduce_samples_one_reduction_for_all() -> None:
    values = torch.arange(12.0).reshape(2, 6)
    got = reduce_samples(6, 4, lambda a, b: [values[:, a:b], values[:, a:b] * 2], "sum")
    _same(got, [values.sum(1), 2 * values.sum(1)])


def test_reduce_samples_checks_its_reductions() -> None:
    with pytest.raises(ValueError, match="2 reductions for a result of 3 parts"):
        reduce_samples(2, None, lambda a, b: (torch.ones(1, 1),) * 3, ("sum", "max"))
