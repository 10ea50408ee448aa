from __future__ import annotations

import pytest

from perspicio._core.chunks import check_chunk_size, chunks, units_per_chunk


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


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_bad_chunk_sizes(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="internal_batch_size"):
        check_chunk_size(value, "internal_batch_size")  # type: ignore[arg-type]
