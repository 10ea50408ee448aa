"""The metrics' batching: Captum's sample split and the sweep-based score table."""

from __future__ import annotations

import pytest
import torch

from perspicio._core.call import build_call
from perspicio._core.chunks import chunks
from perspicio.metrics import sampling
from perspicio.testing import ReLUMLP


def captum_split(n_samples: int, bsz: int, mepb: int | None) -> list[int]:
    """Sizes of the chunks Captum's metrics use, written out from its documented rule."""
    per = n_samples if mepb is None else min(max(mepb // bsz, 1), n_samples)
    sizes, done = [], 0
    while done < n_samples:
        sizes.append(min(per, n_samples - done))
        done += sizes[-1]
    return sizes


@pytest.mark.parametrize(
    ("n", "bsz", "mepb"), [(10, 4, None), (10, 4, 9), (10, 4, 3), (7, 1, 3), (5, 2, 100), (1, 3, 1)]
)
def test_samples_per_chunk_split_like_captum(n: int, bsz: int, mepb: int | None) -> None:
    sizes = [b - a for a, b in chunks(n, sampling.samples_per_chunk(bsz, mepb))]
    assert sizes == captum_split(n, bsz, mepb)


@pytest.mark.parametrize("bad", [0, -2])
def test_samples_per_chunk_rejects_bad_knob(bad: int) -> None:
    with pytest.raises(ValueError, match="max_examples_per_batch must be at least 1"):
        sampling.samples_per_chunk(2, bad)


@pytest.mark.parametrize("mepb", [None, 1, 3, 5, 100])
def test_score_points_table_is_chunk_invariant(mepb: int | None) -> None:
    model = ReLUMLP()
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
    call = build_call(x, [0, 1, 2])
    shifts = torch.linspace(-1, 1, 7)

    def make(start: int, stop: int) -> tuple[torch.Tensor, ...]:
        return ((x.unsqueeze(0) + shifts[start:stop].reshape(-1, 1, 1)).flatten(0, 1),)

    table, base = sampling.score_points(model, call, 7, make, mepb)
    with torch.no_grad():
        expected = torch.stack([model(x + s)[torch.arange(3), [0, 1, 2]] for s in shifts])
        torch.testing.assert_close(base, model(x)[torch.arange(3), [0, 1, 2]])
    torch.testing.assert_close(table, expected)


def test_score_points_needs_one_score_per_example() -> None:
    x = torch.randn(2, 6)
    with pytest.raises(ValueError, match="give a target"):
        sampling.score_points(ReLUMLP(), build_call(x), 2, lambda a, b: (x.repeat(b - a, 1),), None)
