"""Pointing game, relevance mass and relevance rank accuracy."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch

from perspicio.metrics import pointing_game, relevance_mass_accuracy, relevance_rank_accuracy

FNS = [pointing_game, relevance_mass_accuracy, relevance_rank_accuracy]


def test_docstring_examples() -> None:
    assert doctest.testmod(importlib.import_module("perspicio.metrics.localisation")).failed == 0


def test_pointing_game_hits_misses_and_ties() -> None:
    a = torch.tensor([[0.0, 5.0, 1.0, 0.0], [2.0, 1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    mask = torch.tensor([[False, True, True, False]])
    torch.testing.assert_close(pointing_game(a, mask), torch.tensor([1.0, 0.5, 0.5]))


def test_image_masks_broadcast_over_channels() -> None:
    a = torch.zeros(2, 3, 4, 4)
    a[0, 1, 0, 0] = 1.0  # inside the box
    a[1, 2, 3, 3] = 1.0  # outside
    box = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    box[:, :, :2, :2] = True
    torch.testing.assert_close(pointing_game(a, box), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(relevance_mass_accuracy(a, box), torch.tensor([1.0, 0.0]))


def test_relevance_mass_counts_positive_relevance_only() -> None:
    a = torch.tensor([[2.0, -5.0, 1.0, 1.0], [-1.0, -1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(relevance_mass_accuracy(a, mask), torch.tensor([0.5, 0.0]))


def test_relevance_rank_accuracy() -> None:
    a = torch.tensor([[0.9, 0.8, 0.1, 0.7], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, False, False, True], [False, False, False, False]])
    # top-2 of row 0 is {0, 1}: one of the two region elements; an empty region scores 0
    torch.testing.assert_close(relevance_rank_accuracy(a, mask), torch.tensor([0.5, 0.0]))
    full = torch.ones(1, 4, dtype=torch.bool)
    torch.testing.assert_close(relevance_rank_accuracy(a[:1], full), torch.tensor([1.0]))


def test_perfect_explanations_score_one() -> None:
    mask = torch.rand(5, 10, generator=torch.Generator().manual_seed(0)) < 0.3
    mask[:, 0] = True
    a = mask.float() * torch.rand(5, 10) + mask.float()
    for fn in FNS:
        torch.testing.assert_close(fn(a, mask), torch.ones(5))


def test_tuple_attributions() -> None:
    a = (torch.tensor([[0.0, 1.0]]), torch.tensor([[3.0]]))
    masks = (torch.tensor([[False, True]]), torch.tensor([[True]]))
    torch.testing.assert_close(relevance_mass_accuracy(a, masks), torch.tensor([1.0]))
    torch.testing.assert_close(pointing_game(a, masks), torch.tensor([1.0]))


@pytest.mark.parametrize("fn", FNS)
def test_bad_masks(fn: object) -> None:
    a = torch.rand(2, 4)
    with pytest.raises(ValueError, match=r"mask\[0\] has shape \(2, 3\), which does not broadcast"):
        fn(a, torch.ones(2, 3, dtype=torch.bool))  # type: ignore[operator]
    with pytest.raises(ValueError, match=r"mask\[0\] must be boolean or hold only 0 and 1"):
        fn(a, torch.full((1, 4), 0.5))  # type: ignore[operator]
    with pytest.raises(ValueError, match="mask must give one tensor per attribution tensor"):
        fn(a, (torch.ones(1, 4), torch.ones(1, 4)))  # type: ignore[operator]
