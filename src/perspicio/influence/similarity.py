"""Influence as similarity: the training examples whose layer activations are nearest.

A simple baseline for data influence (used as such in, e.g., Hanawa et al., "Evaluation of
Similarity-based Explanations", ICLR 2021): compare a test example's activations at some
layers with every training example's, by cosine similarity or Euclidean distance. Training
activations are computed once and stored in ``activation_dir`` as safetensors.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from perspicio._core.hooks import capture
from perspicio._core.params import resolve_layers
from perspicio._core.validate import ArgumentError
from perspicio.influence.base import DataInfluence


def euclidean_distance(test: Tensor, train: Tensor) -> Tensor:
    """``(n_test, n_train)`` Euclidean distances between flattened rows."""
    return torch.cdist(test.reshape(len(test), -1), train.reshape(len(train), -1))


def cosine_similarity(test: Tensor, train: Tensor, replace_nan: int = 0) -> Tensor:
    """``(n_test, n_train)`` cosine similarities between flattened rows.

    A zero row has no direction: its similarities are ``replace_nan``. (Captum writes
    ``replace_nan`` into the zero row's entries before the product, so its score for such a
    pair depends on the other row; here it is ``replace_nan`` itself.)
    """
    test, train = test.reshape(len(test), -1), train.reshape(len(train), -1)
    n_test, n_train = test.norm(dim=1, keepdim=True), train.norm(dim=1, keepdim=True)
    sim = (test / n_test.clamp_min(1e-300)) @ (train / n_train.clamp_min(1e-300)).T
    zero = (n_test == 0) | (n_train == 0).T
    return torch.where(zero, sim.new_tensor(float(replace_nan)), sim)


def _as_args(batch: Any) -> tuple[Any, ...]:
    return tuple(batch) if isinstance(batch, tuple | list) else (batch,)


class SimilarityInfluence(DataInfluence):
    """The training examples whose activations at ``layers`` are most similar to a test input.

    Args:
        module: the model.
        layers: a layer name or a list of names (as in ``module.named_modules()``).
        influence_src_dataset: the training inputs (items are model inputs, no labels).
        activation_dir: folder where training activations are stored (safetensors).
        model_id: names the stored activations of this model.
        similarity_metric: ``metric(test_acts, train_acts) -> (n_test, n_train)``.
        similarity_direction: ``"max"`` (most similar) or ``"min"`` (e.g. for distances).
        batch_size: batch size for reading ``influence_src_dataset``.
        replace_nan: for the default cosine metric, the score of zero activations
            (default: -2 for ``"max"``, 2 for ``"min"``).

    Example:
        >>> import tempfile, torch
        >>> from perspicio.influence import SimilarityInfluence
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
        >>> sim = SimilarityInfluence(model, ["0"], torch.randn(10, 3), tempfile.mkdtemp())
        >>> indices, scores = sim.influence(torch.randn(2, 3), top_k=3)["0"]
        >>> indices.shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        module: nn.Module,
        layers: str | list[str],
        influence_src_dataset: Any,
        activation_dir: str,
        model_id: str = "",
        similarity_metric: Callable[..., Tensor] = cosine_similarity,
        similarity_direction: str = "max",
        batch_size: int = 1,
        **kwargs: Any,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if similarity_direction not in ("max", "min"):
            raise ArgumentError(
                f"similarity_direction must be 'max' or 'min', got {similarity_direction!r}"
            )
        self.module = module
        self.layers = [layers] if isinstance(layers, str) else list(layers)
        resolve_layers(module, self.layers)
        self.influence_src_dataset = influence_src_dataset
        self.activation_dir, self.model_id = activation_dir, model_id
        self.similarity_direction, self.batch_size = similarity_direction, batch_size
        if similarity_metric is cosine_similarity:
            self.replace_nan = kwargs.get("replace_nan", -2 if similarity_direction == "max" else 2)
            metric = similarity_metric

            def similarity_metric(a: Tensor, b: Tensor) -> Tensor:
                return metric(a, b, replace_nan=self.replace_nan)

        self.similarity_metric = similarity_metric
        self.influence_src_dataloader = DataLoader(influence_src_dataset, batch_size, shuffle=False)

    def _path(self, layer: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", layer) or "model"
        return os.path.join(
            self.activation_dir, self.model_id or "default", "src", f"{safe}.safetensors"
        )

    def _activations(self, args: tuple[Any, ...]) -> list[Tensor]:
        modules = dict(self.module.named_modules())
        layers = [modules[name] for name in self.layers]
        with torch.no_grad(), capture(layers) as rec:
            self.module(*args)
        return [rec[m][0].detach() for m in layers]

    def source_activations(self, load_from_disk: bool = True) -> list[Tensor]:
        """Each layer's activations over the training data (read from or written to disk)."""
        from safetensors.torch import load_file, save_file

        paths = [self._path(layer) for layer in self.layers]
        if load_from_disk and all(os.path.exists(p) for p in paths):
            return [load_file(p)["activations"] for p in paths]
        parts = [self._activations(_as_args(b)) for b in self.influence_src_dataloader]
        acts = [torch.cat([p[i] for p in parts]) for i in range(len(self.layers))]
        for path, act in zip(paths, acts):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            save_file({"activations": act.contiguous().cpu()}, path)
        return acts

    def influence(  # type: ignore[override]
        self,
        inputs: Tensor | tuple[Tensor, ...],
        top_k: int = 1,
        additional_forward_args: Any = None,
        load_src_from_disk: bool = True,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """For each layer: ``(indices, scores)`` of the ``top_k`` most similar training examples.

        Where the cosine metric met zero activations, the key ``"zero_acts-<layer>"`` holds
        the ``[test_index, train_index]`` pairs concerned.
        """
        n_src = len(self.influence_src_dataset)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ArgumentError(f"top_k must be a positive int, got {top_k!r}")
        if top_k > n_src:
            raise ArgumentError(f"top_k={top_k} is larger than the training data ({n_src})")
        extra = () if additional_forward_args is None else _as_args(additional_forward_args)
        tests = self._activations((*_as_args(inputs), *extra))
        out: dict[str, Any] = {}
        largest = self.similarity_direction == "max"
        for layer, test, src in zip(
            self.layers, tests, self.source_activations(load_src_from_disk)
        ):
            sim = self.similarity_metric(test, src.to(test))
            if sim.shape != (len(test), len(src)):
                raise ArgumentError(
                    f"similarity_metric returned shape {tuple(sim.shape)}, expected "
                    f"{(len(test), len(src))}"
                )
            values, indices = torch.topk(sim, top_k, dim=1, largest=largest)
            out[layer] = (indices, values)
            if hasattr(self, "replace_nan"):
                zero = (sim == self.replace_nan).nonzero()
                if zero.numel():
                    warnings.warn(
                        f"layer {layer} has zero activations: their cosine similarity is "
                        f"undefined (pairs under 'zero_acts-{layer}')",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    out[f"zero_acts-{layer}"] = zero
        return out
