from __future__ import annotations

from typing import Any

import pytest
import torch

from perspicio._core.masks import (
    FeatureGroups,
    count_features,
    default_feature_mask,
    format_feature_mask,
)


def test_default_mask_numbers_every_scalar_across_inputs() -> None:
    masks = default_feature_mask((torch.zeros(2, 2, 3), torch.zeros(2, 4)))
    assert [m.shape for m in masks] == [(1, 2, 3), (1, 4)]
    assert masks[0].flatten().tolist() == list(range(6))
    assert masks[1].flatten().tolist() == [6, 7, 8, 9]
    assert count_features(masks) == 10


@pytest.mark.parametrize(
    ("mask", "shape"),
    [
        (torch.tensor([0, 1, 1]), (1, 1, 3)),  # missing leading dims become 1
        (torch.tensor([[0], [1]]), (1, 2, 1)),  # size-1 dims broadcast
        (torch.zeros(4, 2, 3, dtype=torch.int32), (4, 2, 3)),  # per example
        (torch.tensor([[True, False, True]]), (1, 1, 3)),  # bool reads as 0/1
    ],
)
def test_masks_are_brought_to_the_input_dims(mask: torch.Tensor, shape: tuple[int, ...]) -> None:
    (out,) = format_feature_mask(mask, (torch.zeros(4, 2, 3),))
    assert out.shape == shape and out.dtype == torch.long


@pytest.mark.parametrize(
    ("mask", "error", "message"),
    [
        (
            torch.zeros(1, 2, 4, dtype=torch.long),
            ValueError,
            r"shape \(1, 2, 4\).*does not broadcast",
        ),
        (torch.zeros(1, 1, 2, 3, dtype=torch.long), ValueError, "does not broadcast"),
        (
            torch.full((1, 2, 3), 0.5),
            ValueError,
            "must hold integer feature ids, got a tensor of torch.float32 that is not all whole",
        ),
        (torch.full((1, 2, 3), float("nan")), ValueError, "not all whole numbers"),
        ([[0, 1, 2]], TypeError, "must be a torch.Tensor"),
        ((torch.zeros(1, 3, dtype=torch.long),) * 2, ValueError, "one mask per input: got 2 for 1"),
    ],
)
def test_bad_masks_are_rejected_with_the_reason(mask: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        format_feature_mask(mask, (torch.zeros(4, 2, 3),))


def test_mask_batch_dimension_must_be_one_or_the_batch() -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 3\), which does not broadcast"):
        FeatureGroups.build(torch.zeros(2, 3, dtype=torch.long), (torch.zeros(4, 3),))


def test_groups_share_ids_across_tensors_and_number_them_densely() -> None:
    xs = (torch.zeros(2, 4), torch.zeros(2, 3))
    groups = FeatureGroups.build((torch.tensor([[5, 5, 9, 2]]), torch.tensor([[9, 2, 2]])), xs)
    assert groups.ids.tolist() == [2, 5, 9] and groups.n_features == 3
    assert groups.dense[0].tolist() == [[1, 1, 2, 0]] and groups.dense[1].tolist() == [[2, 0, 0]]
    assert not groups.per_example
    sel = groups.select(torch.tensor([[False, False, True]]))  # feature id 9 only
    assert sel[0].tolist() == [[[False, False, True, False]]]
    assert sel[1].tolist() == [[[True, False, False]]]


def test_select_and_spread_per_example() -> None:
    xs = (torch.zeros(2, 3),)
    groups = FeatureGroups.build(torch.tensor([[0, 1, 1], [1, 1, 0]]), xs)
    assert groups.per_example
    keep = torch.tensor([[[True, False], [False, True]]])  # (k=1, N=2, F=2)
    assert groups.select(keep)[0].tolist() == [[[True, False, False], [True, True, False]]]
    table = torch.tensor([[10.0, 20.0], [30.0, 40.0]])  # (rows=N, F)
    assert groups.spread(table)[0].tolist() == [[10, 20, 20], [40, 40, 30]]
    wide = torch.arange(8.0).reshape(4, 2)  # two output values per example
    assert groups.spread(wide)[0].tolist() == [[0, 1, 1], [2, 3, 3], [5, 5, 4], [7, 7, 6]]
    with pytest.raises(ValueError, match="one group of rows per example"):
        groups.spread(torch.zeros(3, 2))


def test_to_ids_lays_out_columns_by_id() -> None:
    groups = FeatureGroups.build(torch.tensor([[3, 0, 3]]), (torch.zeros(1, 3),))
    assert groups.to_ids(torch.tensor([[1.0, 2.0]])).tolist() == [[1, 0, 0, 2]]


def test_whole_number_float_masks_are_ids_as_in_captum() -> None:
    x = (torch.zeros(4, 2, 3),)
    mask = torch.tensor([[[0.0, 0.0, 1.0], [2.0, 2.0, 1.0]]])
    (got,) = format_feature_mask(mask, x)
    assert got.dtype == torch.long and got.tolist() == mask.long().tolist()
