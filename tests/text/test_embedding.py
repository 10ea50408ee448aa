from __future__ import annotations

import doctest
import importlib

import pytest
import torch
from torch import nn

from perspicio.attr import (
    InterpretableEmbeddingBase,
    TokenReferenceBase,
    configure_interpretable_embedding_layer,
    remove_interpretable_embedding_layer,
)


def test_doctests() -> None:
    assert doctest.testmod(importlib.import_module("perspicio.text.embedding")).failed == 0


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(7, 3)


class TextNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = Encoder()
        self.fc = nn.Linear(3, 2)

    def forward(self, ids_or_vectors: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder.word_embeddings(ids_or_vectors).mean(1))


def test_configure_and_remove_a_nested_layer() -> None:
    model = TextNet()
    ids = torch.tensor([[1, 2, 3]])
    original = model.encoder.word_embeddings
    expected = model(ids)
    emb = configure_interpretable_embedding_layer(model, "encoder.word_embeddings")
    assert model.encoder.word_embeddings is emb and emb.embedding is original
    assert (emb.num_embeddings, emb.embedding_dim, emb.full_name) == (
        7,
        3,
        "encoder.word_embeddings",
    )
    torch.testing.assert_close(model(emb.indices_to_embeddings(ids)), expected)
    with pytest.raises(ValueError, match="already an InterpretableEmbeddingBase"):
        configure_interpretable_embedding_layer(model, "encoder.word_embeddings")
    remove_interpretable_embedding_layer(model, emb)
    assert model.encoder.word_embeddings is original


def test_bad_names_and_arguments() -> None:
    model = TextNet()
    with pytest.raises(ValueError, match="no submodule named 'embedding'"):
        configure_interpretable_embedding_layer(model)
    with pytest.raises(ValueError, match="no submodule named 'encoder.missing'"):
        configure_interpretable_embedding_layer(model, "encoder.missing")
    with pytest.raises(TypeError, match="must be the InterpretableEmbeddingBase"):
        remove_interpretable_embedding_layer(model, model.fc)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got no arguments"):
        InterpretableEmbeddingBase(nn.Embedding(2, 2), "e")()


def test_pass_through_takes_keyword_arguments() -> None:
    emb = InterpretableEmbeddingBase(nn.Embedding(2, 2), "e")
    v = torch.randn(1, 2, 2)
    assert emb(inputs_embeds=v) is v


def test_token_reference() -> None:
    ref = TokenReferenceBase(reference_token_idx=5).generate_reference(3, torch.device("cpu"))
    assert ref.dtype == torch.long and ref.tolist() == [5, 5, 5]
    assert TokenReferenceBase().generate_reference(2, "cpu").tolist() == [0, 0]
