from __future__ import annotations

import doctest
import importlib
from typing import Any

import pytest
import torch

from perspicio.testing.text import FIRST, SECOND, order_labels, text_classifier, token_attributions


@pytest.fixture(scope="module")
def trained() -> Any:
    return text_classifier()


def test_order_labels() -> None:
    tokens = torch.tensor([[7, 1, 3, 2], [3, 1, 7, 2], [7, 3, 7, 1], [1, 2, 4, 5]])
    assert order_labels(tokens).tolist() == [1, 0, 1, 0]


def test_the_toy_model_learns_the_task(trained: Any) -> None:
    model, tokens, labels, vocabulary = trained
    assert tokens.shape == (200, 8) and labels.float().mean() == 0.5
    assert vocabulary[0] == "<pad>" and len(vocabulary) == 12
    with torch.no_grad():
        accuracy = (model(tokens).argmax(1) == labels).float().mean()
    assert accuracy > 0.95
    assert not model.training


def test_token_attributions_point_at_the_second_token(trained: Any) -> None:
    model, tokens, labels, _ = trained
    positives = tokens[labels == 1][:12]
    attrs, delta = token_attributions(model, positives, target=1, n_steps=16)
    assert attrs.shape == positives.shape and delta.shape == (12,)
    # the SECOND token that follows a FIRST decides the label: it gets the top attribution
    top = positives.gather(1, attrs.argmax(1, keepdim=True)).squeeze(1)
    assert (top == SECOND).float().mean() >= 0.75
    assert FIRST in positives


def test_doctests(trained: Any) -> None:
    assert doctest.testmod(importlib.import_module("perspicio.testing.text")).failed == 0
