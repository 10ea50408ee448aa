"""Summarizers: keep running statistics of attributions, overall and per class."""

from __future__ import annotations

import copy
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from perspicio._core.validate import ArgumentError
from perspicio.summary.stats import Stat, StatValue

__all__ = ["ClassSummarizer", "Summarizer", "SummarizerSingleTensor"]

Summary = dict[str, StatValue | None]


def _resolve(stats: Sequence[Stat]) -> tuple[list[Stat], list[int]]:
    """All stats needed, dependencies first, and the indices of the requested ones.

    A requested stat is used as is (with its name); a missing dependency is created.
    Duplicates (same class and parameters) are kept once.
    """
    for stat in stats:
        if not isinstance(stat, Stat):
            raise TypeError(f"stats must be Stat instances; got {type(stat).__name__}")
    known: dict[Stat, Stat] = {}
    for stat in stats:
        known.setdefault(stat, stat)
    ordered: list[Stat] = []

    def place(stat: Stat, path: tuple[Stat, ...]) -> None:
        if any(stat is placed for placed in ordered):
            return
        if stat in path:
            raise ArgumentError(f"stats depend on each other in a cycle through {stat!r}")
        for dependency in stat.dependencies():
            place(known.setdefault(dependency, dependency), (*path, stat))
        ordered.append(stat)

    requested = list(known.values())
    for stat in requested:
        place(stat, ())
    indices = [next(i for i, s in enumerate(ordered) if s is stat) for stat in requested]
    return ordered, indices


def _as_tensor(value: Any, what: str) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, (bool, int, float, np.ndarray, np.number)):
        tensor = torch.as_tensor(value)
        return tensor.float() if not isinstance(value, np.ndarray) else tensor
    raise TypeError(f"{what} must be a tensor or a number; got {type(value).__name__}")


class SummarizerSingleTensor:
    """Running statistics of one stream of tensors.

    Prefer `Summarizer`, which adds the dependencies and handles tuples of inputs.

    Args:
        stats: Every stat to update, each after the stats it depends on.
        summary_stats_indices: Positions in `stats` of the stats to show in `summary`.
    """

    def __init__(self, stats: list[Stat], summary_stats_indices: list[int]) -> None:
        for index in summary_stats_indices:
            if not 0 <= index < len(stats):
                raise ArgumentError(
                    f"summary_stats_indices has {index}, outside 0..{len(stats) - 1}"
                )
        for i, stat in enumerate(stats):
            for dependency in stat.dependencies():
                if dependency not in stats[:i]:
                    raise ArgumentError(
                        f"{stat!r} depends on {dependency!r}, which must come before it in stats"
                    )
        self._stats = stats
        self._stat_to_stat = {stat: stat for stat in stats}
        self._summary_stats = [stats[i] for i in summary_stats_indices]
        self._shape: torch.Size | None = None
        for stat in stats:
            stat._other_stats = self
            stat.init()

    def _check_shape(self, shape: torch.Size) -> None:
        if self._shape is None:
            self._shape = shape
        elif shape != self._shape:
            raise ArgumentError(
                f"every sample must have the shape of the first, {tuple(self._shape)}; "
                f"got {tuple(shape)}"
            )

    def update(self, x: Tensor) -> None:
        """Add one sample."""
        self._check_shape(x.shape)
        for stat in self._stats:
            stat.update(x)

    def _update_batch(self, xs: Tensor) -> None:
        """Add the samples along dim 0 of `xs`, vectorised when every stat allows it."""
        if xs.shape[0] == 0:
            return
        self._check_shape(xs.shape[1:])
        if all(stat._batch_safe for stat in self._stats):
            for stat in self._stats:
                stat._update_batch(xs)
            return
        for x in xs:
            for stat in self._stats:
                stat.update(x)

    def get(self, stat: Stat) -> Stat | None:
        """This summarizer's stat equal to `stat` (same class and parameters), or None."""
        return self._stat_to_stat.get(stat)

    @property
    def summary(self) -> Summary:
        """Stat name to current value, for the requested stats."""
        return {stat.name: stat.get() for stat in self._summary_stats}


class Summarizer:
    """Running statistics of a tensor, or of each tensor of a tuple, over many updates.

    Each `update` adds one sample; statistics are element-wise over samples, so every
    sample must have the same shape. Dependencies between stats are added automatically
    (e.g. ``StdDev`` brings ``Var``, ``MSE``, ``Mean`` and ``Count``) but only the stats
    asked for appear in `summary`.

    Args:
        stats: The statistics to keep, e.g. ``[Mean(), Var(order=1)]`` or `CommonStats()`.

    Example:
        >>> from perspicio.summary import Max, Mean
        >>> summ = Summarizer([Mean(), Max()])
        >>> summ.update(torch.tensor([1.0, 4.0]))
        >>> summ.update(torch.tensor([3.0, 0.0]))
        >>> summ.summary
        {'mean': tensor([2., 2.]), 'max': tensor([3., 4.])}
    """

    def __init__(self, stats: Sequence[Stat]) -> None:
        self._stats, self._summary_stats_indices = _resolve(list(stats))
        self._summarizers: list[SummarizerSingleTensor] = []
        self._is_inputs_tuple: bool | None = None

    def _inputs(self, x: Any) -> tuple[Tensor, ...]:
        """The inputs as a tuple of tensors, checked against earlier updates."""
        is_tuple = isinstance(x, tuple)
        if self._is_inputs_tuple is not None and is_tuple != self._is_inputs_tuple:
            first = "a tuple" if self._is_inputs_tuple else "a single tensor"
            raise TypeError(f"update got {type(x).__name__} but the first update got {first}")
        inputs = tuple(_as_tensor(item, "update input") for item in (x if is_tuple else (x,)))
        if self._summarizers and len(inputs) != len(self._summarizers):
            raise ArgumentError(
                f"update got {len(inputs)} tensors but earlier updates had {len(self._summarizers)}"
            )
        if not self._summarizers:
            self._summarizers = [
                SummarizerSingleTensor(copy.deepcopy(self._stats), self._summary_stats_indices)
                for _ in inputs
            ]
        self._is_inputs_tuple = is_tuple
        return inputs

    def update(self, x: Tensor | float | tuple[Tensor | float, ...]) -> None:
        """Add one sample: a tensor (or number), or a tuple with one tensor per input."""
        inputs = self._inputs(x)
        for summarizer, tensor in zip(self._summarizers, inputs):
            summarizer.update(tensor)

    def update_batch(self, x: Tensor | tuple[Tensor, ...]) -> None:
        """Add every example of a batch (dim 0 of each input) as one sample.

        The batch's statistics are merged into the running ones in one step (Chan et al.'s
        pairwise update), which equals adding the examples one by one up to rounding.
        """
        inputs = self._inputs(x)  # checks the form and sets up one summarizer per input
        sizes = sorted({int(t.shape[0]) if t.dim() else 0 for t in inputs})
        if len(sizes) > 1 or any(t.dim() == 0 for t in inputs):
            raise ArgumentError(
                f"update_batch needs inputs with one batch size on dim 0; got {sizes}"
            )
        self._update_batch(inputs)

    def _update_batch(self, inputs: tuple[Tensor, ...]) -> None:
        """Add samples along dim 0 of each (already checked) input."""
        for summarizer, tensor in zip(self._summarizers, inputs):
            summarizer._update_batch(tensor)

    @property
    def summary(self) -> Summary | list[Summary] | None:
        """Stat name to value: a dict, or a list of dicts for tuple inputs; None before updates."""
        if not self._summarizers:
            return None
        summaries = [summarizer.summary for summarizer in self._summarizers]
        return summaries if self._is_inputs_tuple else summaries[0]


def _label_keys(labels: Any, batch_size: int) -> list[Hashable]:
    """One dictionary key per example; a single label applies to the whole batch."""
    if isinstance(labels, (Tensor, np.ndarray)):
        labels = labels.tolist()
    if not isinstance(labels, list):
        return [labels] * batch_size
    keys = [label.item() if isinstance(label, Tensor) else label for label in labels]
    if len(keys) == 1:
        return keys * batch_size
    if len(keys) != batch_size:
        raise ArgumentError(
            f"labels must have one entry per example ({batch_size}) or exactly one; got {len(keys)}"
        )
    return keys


class ClassSummarizer(Summarizer):
    """A `Summarizer` that also keeps one summary per class label.

    With labels, dim 0 of each input is the batch: every example is one sample, added to
    the overall summary and to its class's. Without labels the whole input is one sample
    of the overall summary, as in `Summarizer`. Batches are folded in vectorised steps.

    Args:
        stats: The statistics to keep.

    Example:
        >>> from perspicio.summary import Mean
        >>> summ = ClassSummarizer([Mean()])
        >>> summ.update(torch.tensor([[1.0], [2.0], [5.0]]), labels=[0, 1, 0])
        >>> summ.class_summaries
        {0: {'mean': tensor([3.])}, 1: {'mean': tensor([2.])}}
    """

    def __init__(self, stats: Sequence[Stat]) -> None:
        super().__init__(stats)
        self._stat_list = list(stats)
        self.summaries: dict[Hashable, Summarizer] = {}

    def update(  # type: ignore[override]
        self, x: Tensor | tuple[Tensor, ...], labels: Any = None
    ) -> None:
        """Add a batch of examples with their labels (or one sample when `labels` is None).

        Args:
            x: A tensor, or a tuple of tensors, with the batch on dim 0.
            labels: One label per example (list, tensor or array), or a single label (any
                hashable, or a one-element list) for the whole batch. Tensor labels become
                Python numbers, so ``tensor([1, 0])`` gives the keys 1 and 0.
        """
        if labels is None:
            super().update(x)
            return
        inputs = self._inputs(x)
        sizes = {tensor.shape[0] if tensor.dim() else None for tensor in inputs}
        if len(sizes) != 1 or None in sizes:
            raise ArgumentError(f"every input needs the same batch size on dim 0; got {sizes}")
        keys = _label_keys(labels, inputs[0].shape[0])
        self._update_batch(inputs)
        rows: dict[Hashable, list[int]] = {}
        for i, key in enumerate(keys):
            rows.setdefault(key, []).append(i)
        for key, members in rows.items():
            if key not in self.summaries:
                self.summaries[key] = Summarizer(self._stat_list)
            class_summary = self.summaries[key]
            class_summary._inputs(x)  # same input form as the overall summary
            index = torch.tensor(members)
            chosen = tuple(t.index_select(0, index.to(t.device)) for t in inputs)
            class_summary._update_batch(chosen)

    @property
    def class_summaries(self) -> dict[Hashable, Summary | list[Summary] | None]:
        """Label to that class's summary, in the order the labels were first seen."""
        return {key: summarizer.summary for key, summarizer in self.summaries.items()}
