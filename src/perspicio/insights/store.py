"""The dataset as the explorer sees it: examples read lazily, once, with model scores attached.

``dataset`` is any iterable of :class:`~perspicio.insights.Batch` (a list, a generator, a
``DataLoader`` wrapped in a generator). Batches are read only as far as a request needs, split
into single examples, and scored by every model once (one forward pass per batch and model);
each example keeps a stable position, which the frontend uses to refer back to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from perspicio.insights.features import BaseFeature, Transform

MAX_STORED = 100_000  # examples kept in memory; the dataset is treated as ending there


class InsightsError(Exception):
    """A request the explorer refuses: carries an HTTP status and a message for the user."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


@dataclass
class Record:
    """One example.

    Attributes:
        index: Position in the dataset (0-based, counting examples, not batches).
        data: Raw data per feature, each with a batch dimension of 1.
        label: The true class index, or ``None`` when the batch had no labels.
        extra: Additional forward arguments for this example, or ``None``.
        scores: Per model, the example's class scores (after ``score_func``), shape ``(K,)``.
    """

    index: int
    data: tuple[Tensor, ...]
    label: int | None
    extra: tuple[Any, ...] | None
    scores: list[Tensor]


def apply_transforms(transforms: list[Transform], value: Any) -> Any:
    """``value`` passed through each transform in order."""
    for fn in transforms:
        value = fn(value)
    return value


def _slice_extra(extra: tuple[Any, ...] | None, size: int, i: int) -> tuple[Any, ...] | None:
    if extra is None:
        return None
    return tuple(
        a[i : i + 1] if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == size else a
        for a in extra
    )


class ExampleStore:
    """Lazily materialised, scored examples of a dataset.

    Args:
        dataset: An iterable of batches.
        features: The visualizer's features, one per model input.
        score: ``(inputs, extra) -> [scores per model]`` for a batch; called under no_grad.
    """

    def __init__(
        self,
        dataset: Iterable[Any],
        features: list[BaseFeature],
        score: Callable[[tuple[Tensor, ...], tuple[Any, ...] | None], list[Tensor]],
    ) -> None:
        self._dataset = dataset
        self._features = features
        self._score = score
        self._records: list[Record] = []
        self._iterator: Iterator[Any] | None = None
        self._exhausted = False
        self._lock = threading.RLock()
        self.error: str | None = None

    @property
    def loaded(self) -> int:
        """How many examples have been read so far."""
        return len(self._records)

    @property
    def exhausted(self) -> bool:
        """Whether the whole dataset has been read (or reading it failed: see ``error``)."""
        return self._exhausted

    def get(self, index: int) -> Record | None:
        """The example at ``index``, reading batches as needed; ``None`` past the end.

        A dataset or model that fails while a batch is read ends the dataset there; the
        failure is kept in :attr:`error` so that every answer can tell the user, instead of
        the dataset looking shorter than it is.
        """
        with self._lock:
            while index >= len(self._records) and not self._exhausted:
                try:
                    self._read_batch()
                except InsightsError as exc:
                    self._exhausted = True
                    self.error = f"the dataset ends early, after {len(self._records)} examples: "
                    self.error += exc.message
            return self._records[index] if index < len(self._records) else None

    def _next_batch(self) -> Any:
        if self._iterator is None:
            try:
                self._iterator = iter(self._dataset)
            except TypeError as exc:
                raise InsightsError(422, f"the dataset is not iterable: {exc}") from exc
        try:
            return next(self._iterator)
        except StopIteration:
            self._exhausted = True
            return None
        except Exception as exc:  # the user's dataset failed; report it, keep serving
            raise InsightsError(
                422, f"reading the dataset failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _read_batch(self) -> None:
        if len(self._records) >= MAX_STORED:
            self._exhausted = True
            return
        batch = self._next_batch()
        if batch is None:
            return
        inputs, labels, extra = self._unpack(batch)
        size = inputs[0].shape[0]
        try:
            model_inputs = tuple(
                apply_transforms(f.input_transforms, x) for f, x in zip(self._features, inputs)
            )
            with torch.no_grad():
                scores = self._score(model_inputs, extra)
        except InsightsError:
            raise
        except Exception as exc:
            raise InsightsError(
                422, f"the models failed on a batch: {type(exc).__name__}: {exc}"
            ) from exc
        start = len(self._records)
        for i in range(size):
            label = None if labels is None else int(labels[i])
            data = tuple(x[i : i + 1] for x in inputs)
            self._records.append(
                Record(start + i, data, label, _slice_extra(extra, size, i), [s[i] for s in scores])
            )

    def _unpack(self, batch: Any) -> tuple[tuple[Tensor, ...], Tensor | None, tuple | None]:
        inputs = getattr(batch, "inputs", None)
        if inputs is None:
            raise InsightsError(422, f"the dataset yielded {type(batch).__name__}, not a Batch")
        inputs = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
        if len(inputs) != len(self._features):
            raise InsightsError(
                422,
                f"a batch has {len(inputs)} inputs but {len(self._features)} features were given",
            )
        if not all(isinstance(x, Tensor) and x.dim() > 0 for x in inputs):
            raise InsightsError(422, "every input of a batch must be a tensor with a batch dim")
        sizes = {x.shape[0] for x in inputs}
        if len(sizes) != 1:
            raise InsightsError(422, f"the inputs of a batch have different sizes {sorted(sizes)}")
        labels = getattr(batch, "labels", None)
        if labels is not None:
            labels = torch.as_tensor(labels).reshape(-1)
            if labels.shape[0] != inputs[0].shape[0]:
                raise InsightsError(
                    422, f"{labels.shape[0]} labels for a batch of {inputs[0].shape[0]}"
                )
        extra = getattr(batch, "additional_args", None)
        if extra is not None and not isinstance(extra, tuple):
            extra = (extra,)
        return inputs, labels, extra
