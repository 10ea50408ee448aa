from __future__ import annotations

import pytest

from perspicio._core.chunks import chunks, units_per_chunk


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
