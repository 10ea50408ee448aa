"""Interpretable embedding layers and token reference baselines.

Gradient methods cannot attribute to integer token ids. The usual remedy is
:class:`~perspicio.attr.LayerIntegratedGradients` on the embedding layer. The alternative
kept here for Captum compatibility swaps the embedding layer for a pass-through
(:func:`configure_interpretable_embedding_layer`), so that the model takes embedding vectors
as inputs; the user computes them with
:meth:`InterpretableEmbeddingBase.indices_to_embeddings` and must put the original layer back
afterwards (:func:`remove_interpretable_embedding_layer`).
"""

from __future__ import annotations

from functools import reduce
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.validate import ArgumentError


class InterpretableEmbeddingBase(nn.Module):
    """A pass-through that stands in for an embedding layer: it returns its first argument.

    Args:
        embedding: the embedding layer it replaces (kept to compute embeddings).
        full_name: the dotted name of that layer in the model.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from perspicio.attr import InterpretableEmbeddingBase
        >>> emb = InterpretableEmbeddingBase(nn.Embedding(10, 3), "embedding")
        >>> vectors = emb.indices_to_embeddings(torch.tensor([[1, 2]]))
        >>> torch.equal(emb(vectors), vectors)
        True
    """

    def __init__(self, embedding: nn.Module, full_name: str) -> None:
        super().__init__()
        self.num_embeddings = getattr(embedding, "num_embeddings", None)
        self.embedding_dim = getattr(embedding, "embedding_dim", None)
        self.embedding = embedding
        self.full_name = full_name

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        """The embedding vectors given in place of the token ids, unchanged."""
        if inputs:
            return inputs[0]
        if kwargs:
            return next(iter(kwargs.values()))
        raise ArgumentError(
            "InterpretableEmbeddingBase got no arguments: pass the embedding vectors as its "
            "first argument"
        )

    def indices_to_embeddings(self, *input: Any, **kwargs: Any) -> Any:
        """The original embedding layer applied to token ids (the inputs to attribute)."""
        return self.embedding(*input, **kwargs)


class TokenReferenceBase:
    """Reference (baseline) token sequences made of one token, such as padding.

    Example:
        >>> from perspicio.attr import TokenReferenceBase
        >>> TokenReferenceBase(reference_token_idx=1).generate_reference(4, device="cpu")
        tensor([1, 1, 1, 1])
    """

    def __init__(self, reference_token_idx: int = 0) -> None:
        self.reference_token_idx = reference_token_idx

    def generate_reference(self, sequence_length: int, device: torch.device | str) -> Tensor:
        """A sequence of ``sequence_length`` reference token ids, shape ``(sequence_length,)``."""
        return torch.full(
            (sequence_length,), self.reference_token_idx, dtype=torch.long, device=device
        )


def _parent_and_name(model: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    *path, name = dotted.split(".")
    try:
        parent = reduce(getattr, path, model)
        getattr(parent, name)
    except AttributeError:
        raise ArgumentError(f"the model has no submodule named {dotted!r}") from None
    return parent, name


def configure_interpretable_embedding_layer(
    model: nn.Module, embedding_layer_name: str = "embedding"
) -> InterpretableEmbeddingBase:
    """Replace the embedding layer ``embedding_layer_name`` (a dotted name) of ``model`` by an
    :class:`InterpretableEmbeddingBase`, so that the model takes embedding vectors.

    This changes the model until :func:`remove_interpretable_embedding_layer` is called (use
    ``try``/``finally``). Captum warns about this on every call; perspicio documents it here.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from perspicio.attr import (IntegratedGradients, configure_interpretable_embedding_layer,
        ...                             remove_interpretable_embedding_layer)
        >>> model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(8, 2))
        >>> emb = configure_interpretable_embedding_layer(model, "0")
        >>> try:
        ...     vectors = emb.indices_to_embeddings(torch.tensor([[3, 5]]))
        ...     attr = IntegratedGradients(model).attribute(vectors, target=1)
        ... finally:
        ...     remove_interpretable_embedding_layer(model, emb)
        >>> attr.shape, type(model[0]).__name__
        (torch.Size([1, 2, 4]), 'Embedding')
    """
    parent, name = _parent_and_name(model, embedding_layer_name)
    layer = getattr(parent, name)
    if isinstance(layer, InterpretableEmbeddingBase):
        raise ArgumentError(
            f"the layer {embedding_layer_name!r} is already an InterpretableEmbeddingBase; "
            "remove it first with remove_interpretable_embedding_layer"
        )
    interpretable = InterpretableEmbeddingBase(layer, embedding_layer_name)
    setattr(parent, name, interpretable)
    return interpretable


def remove_interpretable_embedding_layer(
    model: nn.Module, interpretable_emb: InterpretableEmbeddingBase
) -> None:
    """Put back the embedding layer that :func:`configure_interpretable_embedding_layer`
    replaced."""
    if not isinstance(interpretable_emb, InterpretableEmbeddingBase):
        raise TypeError(
            "interpretable_emb must be the InterpretableEmbeddingBase returned by "
            f"configure_interpretable_embedding_layer, got {type(interpretable_emb).__name__}"
        )
    parent, name = _parent_and_name(model, interpretable_emb.full_name)
    setattr(parent, name, interpretable_emb.embedding)
