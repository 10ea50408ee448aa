"""Concepts: named sets of examples, and the base class of concept-based interpreters.

Kim et al. (2018), "Interpretability Beyond Feature Attribution: Quantitative Testing with
Concept Activation Vectors (TCAV)", https://arxiv.org/abs/1711.11279.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from perspicio._core.validate import ArgumentError


class Concept:
    """A human-level idea given by examples: batches of model inputs from ``data_iter``.

    Args:
        id: a unique integer identifying the concept (also its class label in CAV training).
        name: a readable name; ``identifier`` is ``"{name}-{id}"``.
        data_iter: an iterable of input batches (a ``DataLoader``, a list of tensors, tuples
            of tensors or dict batches), or ``None`` when the concept's activations are
            already stored.

    Example:
        >>> import torch
        >>> from perspicio.concept import Concept
        >>> stripes = Concept(0, "stripes", [torch.rand(4, 1, 8, 8)])
        >>> stripes.identifier
        'stripes-0'
    """

    def __init__(self, id: int, name: str, data_iter: Iterable[Any] | None) -> None:
        if isinstance(id, bool) or not isinstance(id, int):
            raise TypeError(f"Concept id must be an int, got {id!r}")
        if not isinstance(name, str) or not name or "/" in name or "\\" in name:
            raise ArgumentError(
                f"Concept name must be a non-empty string without path separators, got {name!r}"
            )
        self.id = id
        self.name = name
        self.data_iter = data_iter

    @property
    def identifier(self) -> str:
        return f"{self.name}-{self.id}"

    def __repr__(self) -> str:
        return f"Concept({self.id!r}, {self.name!r})"


class ConceptInterpreter:
    """Base of concept-based interpretation methods: ``interpret`` is theirs to define.

    Example:
        >>> from torch import nn
        >>> from perspicio.concept import ConceptInterpreter
        >>> ConceptInterpreter(nn.Linear(2, 2)).model
        Linear(in_features=2, out_features=2, bias=True)
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def interpret(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement interpret")


def concepts_to_str(concepts: Sequence[Concept]) -> str:
    """The key of an experimental set: its concept ids joined by ``-`` (``"0-3"``)."""
    return "-".join(str(c.id) for c in concepts)
