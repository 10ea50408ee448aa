from __future__ import annotations

import pytest

from perspicio._core.chunks import chunks, grouped, units_per_chunk


@pytest.mark.parametrize(
    ("total", "per"), [(10, None), (10, 1), (10, 3), (10, 10), (10, 50), (1, 4)]
)
def test_chunks_cover_the_range_once(total: int, per: int | None) -> None:
    ranges = list(chunks(total, per))
    covered = [i for a, b in ranges for i in range(a, b)]
    assert covered == list(range(total))
    if per is not None:
        assert all(b - a <= per for a, b in ranges)


def test_units_per_chunk() -> None:
    assert units_per_chunk(None, 4) is None
    assert units_per_chunk(10, 4) == 2
    assert units_per_chunk(3, 4) == 1


@pytest.mark.parametrize(("total", "per"), [(7, None), (7, 1), (7, 3), (7, 7), (0, 2)])
def test_grouped_streams_items_in_order(total: int, per: int | None) -> None:
    made: list[int] = []

    def items():  # type: ignore[no-untyped-def]
        for i in range(total):
            made.append(i)
            yield i

    groups = grouped(items(), per)
    first = next(groups, None)
    if total == 0:
        assert first is None
        return
    assert first is not None
    assert len(made) == len(first)  # nothing beyond the first group was made yet
    rest = list(groups)
    assert [i for g in [first, *rest] for i in g] == list(range(total))
    assert [len(g) for g in [first, *rest]] == [b - a for a, b in chunks(total, per)]
