"""Concept activation vectors, stored as safetensors with JSON metadata (no pickle).

Kim et al. (2018), "Interpretability Beyond Feature Attribution: Quantitative Testing with
Concept Activation Vectors (TCAV)", https://arxiv.org/abs/1711.11279.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from perspicio.concept import store
from perspicio.concept.concept import Concept, concepts_to_str


class CAV:
    """The CAVs of one experimental set (a list of concepts) at one layer.

    ``stats`` holds the classifier's ``weights`` (one row per class), its ``classes`` (the
    concept id of each row) and whatever else it reported (e.g. ``accs``). Tensors are saved
    in a safetensors file, everything else as JSON metadata, so only tensors, numbers,
    strings and lists of these can be stored.

    Example:
        >>> import tempfile, torch
        >>> from perspicio.concept import CAV, Concept
        >>> concepts = [Concept(0, "stripes", None), Concept(1, "random", None)]
        >>> path = tempfile.mkdtemp()
        >>> CAV.create_cav_dir_if_missing(path, "m")
        >>> stats = {"weights": torch.ones(2, 3), "classes": [0, 1]}
        >>> CAV(concepts, "conv", stats, path, "m").save()
        >>> CAV.load(path, "m", concepts, "conv").stats["classes"]
        [0, 1]
    """

    def __init__(
        self,
        concepts: list[Concept],
        layer: str,
        stats: dict[str, Any] | None = None,
        save_path: str = "./cav/",
        model_id: str = "default_model_id",
    ) -> None:
        self.concepts = concepts
        self.layer = layer
        self.stats = stats
        self.save_path = save_path
        self.model_id = model_id

    @staticmethod
    def assemble_save_path(
        path: str, model_id: str, concepts: Sequence[Concept], layer: str
    ) -> str:
        """``{path}/{model_id}/{concept ids joined by '-'}-{layer}.safetensors``."""
        return os.path.join(path, model_id, f"{concepts_to_str(concepts)}-{layer}.safetensors")

    @staticmethod
    def create_cav_dir_if_missing(save_path: str, model_id: str) -> None:
        """Make ``{save_path}/{model_id}`` if it does not exist."""
        os.makedirs(os.path.join(save_path, model_id), exist_ok=True)

    def save(self) -> None:
        """Write the CAV's statistics, concepts and layer to its file."""
        stats = dict(self.stats or {})
        tensors = {k: v for k, v in stats.items() if isinstance(v, Tensor)}
        meta = {
            "concept_ids": [c.id for c in self.concepts],
            "concept_names": [c.name for c in self.concepts],
            "layer": self.layer,
            "stats": {k: _plain(v) for k, v in stats.items() if k not in tensors},
        }
        path = CAV.assemble_save_path(self.save_path, self.model_id, self.concepts, self.layer)
        store.write(path, tensors, meta)

    @staticmethod
    def load(cavs_path: str, model_id: str, concepts: list[Concept], layer: str) -> CAV | None:
        """The stored CAV of ``concepts`` at ``layer``, or ``None`` if there is none."""
        found = store.read(CAV.assemble_save_path(cavs_path, model_id, concepts, layer))
        if found is None:
            return None
        tensors, meta = found
        saved = [Concept(i, n, None) for i, n in zip(meta["concept_ids"], meta["concept_names"])]
        stats: dict[str, Any] = {**meta["stats"], **tensors}
        return CAV(saved, meta["layer"], stats, cavs_path, model_id)

    def __repr__(self) -> str:
        return f"CAV({self.concepts!r}, {self.layer!r})"


def _plain(value: Any) -> Any:
    """A JSON-ready form of a statistic (arrays and tensors become lists)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    raise TypeError(f"CAV statistic of type {type(value).__name__} cannot be stored")


def cav_weights(cav: CAV) -> tuple[Tensor, list[int]]:
    """A CAV's weight rows and the concept id of each row."""
    stats = cav.stats or {}
    weights = torch.as_tensor(stats["weights"])
    return weights.reshape(weights.shape[0], -1), [int(c) for c in stats["classes"]]
