"""What every influence method shares: the result type, datasets as batches, losses, top-k.

A *batch* is a tuple whose last element holds the labels: the model is called as
``model(*batch[:-1])`` and the loss as ``loss_fn(output, batch[-1])`` (Captum's convention).
Training data is a ``Dataset`` (read in order with ``batch_size``) or a ``DataLoader``; test
data is one batch or a ``DataLoader``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, NamedTuple, overload

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from perspicio._core.params import ParameterSite, flatten
from perspicio._core.validate import ArgumentError

LossFn = Callable[..., Tensor]
# elements of per-example gradients held at once when batches are merged (64 MiB in float32)
GRADIENT_BUDGET = 1 << 24


class KMostInfluentialResults(NamedTuple):
    """The ``k`` most influential training examples for each test example.

    Attributes:
        indices: ``(n_test, k)`` indices into the training data, most influential first.
        influence_scores: ``(n_test, k)`` their influence scores.
    """

    indices: Tensor
    influence_scores: Tensor


class DataInfluence(ABC):
    """Base of every method that scores training examples by their influence on a prediction.

    Args:
        model: the model whose training data is examined.
        train_dataset: the training data.
    """

    def __init__(self, model: nn.Module, train_dataset: Any, **kwargs: Any) -> None:
        self.model = model
        self.train_dataset = train_dataset

    @abstractmethod
    def influence(self, inputs: Any = None, **kwargs: Any) -> Any:
        """The influence of the training data on ``inputs`` (a batch)."""

    @classmethod
    def get_name(cls) -> str:
        """The method's name, for progress bars and reports."""
        return cls.__name__

    def _keep_data(
        self,
        model: nn.Module,
        train_dataset: Any,
        loss_fn: LossFn | None,
        test_loss_fn: LossFn | None,
        batch_size: int,
    ) -> None:
        """Keeps the model, the training data (and its loader) and the two losses."""
        self.model, self.train_dataset = model, train_dataset
        self.loss_fn = loss_fn
        self.test_loss_fn = loss_fn if test_loss_fn is None else test_loss_fn
        self.batch_size = batch_size
        self.train_dataloader = as_loader(train_dataset, batch_size)


def check_loss_fn(loss_fn: Any, name: str, sample_wise: bool = True) -> str:
    """The reduction of ``loss_fn`` ("sum", "mean" or "none"), checked against the mode.

    Per-batch gradient tricks need a loss that reduces a batch (``"sum"`` or ``"mean"``);
    per-example gradients need ``reduction="none"``. A loss without a ``reduction``
    attribute is taken to sum (batch mode) or to give one loss per example.
    """
    if loss_fn is None:
        return "sum"
    if not callable(loss_fn):
        raise TypeError(f"{name} must be callable (output, labels) -> loss, got {loss_fn!r}")
    reduction = getattr(loss_fn, "reduction", None)
    if reduction is None:
        return "sum" if sample_wise else "none"
    if sample_wise and reduction not in ("sum", "mean"):
        raise ArgumentError(
            f'reduction for `{name}` must be "sum" or "mean" when '
            f"`sample_wise_grads_per_batch` is True, got {reduction!r}"
        )
    if not sample_wise and reduction != "none":
        raise ArgumentError(
            f'reduction for `{name}` must be "none" when `sample_wise_grads_per_batch` is '
            f"False, got {reduction!r}"
        )
    return str(reduction)


def check_losses(loss_fn: Any, test_loss_fn: Any, sample_wise: bool) -> tuple[str, str]:
    """The reductions of ``loss_fn`` and ``test_loss_fn`` (``None``: that of ``loss_fn``)."""
    reduction = check_loss_fn(loss_fn, "loss_fn", sample_wise)
    if test_loss_fn is None:
        return reduction, reduction
    return reduction, check_loss_fn(test_loss_fn, "test_loss_fn", sample_wise)


def gradient_site(
    model: nn.Module, layers: Any, loss_fn: Any, test_loss_fn: Any, sample_wise: bool
) -> tuple[str, str, list[Any] | None, ParameterSite]:
    """The losses' checked reductions, then ``layers`` as a list and their parameter site."""
    reductions = check_losses(loss_fn, test_loss_fn, sample_wise)
    layers = None if layers is None else list(layers)
    return (*reductions, layers, ParameterSite.of(model, layers))


def check_batch_size(batch_size: Any, train_dataset: Any) -> None:
    if not isinstance(train_dataset, DataLoader) and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ArgumentError(
            f"batch_size must be a positive int when train_dataset is a Dataset, got {batch_size!r}"
        )


def as_loader(dataset: Any, batch_size: int, name: str = "train_dataset") -> Any:
    """A ``DataLoader`` as given, a ``Dataset`` read in order in batches of ``batch_size``."""
    if isinstance(dataset, DataLoader):
        return dataset
    if isinstance(dataset, Dataset) or hasattr(dataset, "__getitem__"):
        return DataLoader(dataset, batch_size, shuffle=False)
    raise TypeError(f"{name} must be a torch Dataset or DataLoader, got {type(dataset).__name__}")


def batches(inputs: Any, name: str = "inputs") -> Iterable[Any]:
    """One batch (a tuple or list whose last element is the labels) or a ``DataLoader``."""
    if isinstance(inputs, DataLoader):
        return inputs
    if isinstance(inputs, tuple | list):
        if len(inputs) < 2:
            raise ArgumentError(
                f"{name} must be a batch (*features, labels) with at least two elements, "
                f"got {len(inputs)}"
            )
        return [tuple(inputs)]
    raise TypeError(
        f"{name} must be a tuple (*features, labels) or a DataLoader, got {type(inputs).__name__}"
    )


def split(batch: Any) -> tuple[tuple[Any, ...], Any]:
    """``(features, labels)`` of a batch."""
    batch = tuple(batch)
    return batch[:-1], batch[-1]


def batch_rows(batch: Any) -> int:
    for value in batch:
        if isinstance(value, Tensor) and value.dim() > 0:
            return int(value.shape[0])
    raise ArgumentError("a batch must hold at least one tensor with a batch dimension")


def merged(loader: Iterable[Any], rows: int) -> Iterator[tuple[Any, ...]]:
    """Consecutive batches concatenated up to ``rows`` rows (results do not depend on it).

    Only batches made of tensors with a common first dimension are merged; others pass as
    they are.
    """
    pending: list[tuple[Any, ...]] = []
    count = 0
    for batch in loader:
        batch = tuple(batch)
        if not all(isinstance(v, Tensor) and v.dim() > 0 for v in batch):
            yield from _flush(pending)
            pending, count = [], 0
            yield batch
            continue
        pending.append(batch)
        count += int(batch[0].shape[0])
        if count >= rows:
            yield from _flush(pending)
            pending, count = [], 0
    yield from _flush(pending)


def _flush(pending: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    if len(pending) == 1:
        yield pending[0]
    elif pending:
        yield tuple(torch.cat(parts) for parts in zip(*pending))


@overload
def example_grads(site: ParameterSite, loss_fn: Any, batch: Any) -> Tensor: ...
@overload
def example_grads(site: ParameterSite, loss_fn: Any, batch: Any, flat: Literal[True]) -> Tensor: ...
@overload
def example_grads(
    site: ParameterSite, loss_fn: Any, batch: Any, flat: Literal[False]
) -> tuple[Tensor, ...]: ...
def example_grads(site: ParameterSite, loss_fn: Any, batch: Any, flat: bool = True) -> Any:
    """Each example's gradient of its own loss w.r.t. the site's parameters.

    ``(B, P)`` with ``flat``, else one ``(B, *param.shape)`` tensor per parameter. With
    ``loss_fn=None`` the model's output (summed per example) is differentiated.
    """
    features, labels = split(batch)
    grads = site.per_example_grads(output_as_loss if loss_fn is None else loss_fn, features, labels)
    return flatten(grads) if flat else grads


def output_as_loss(output: Tensor, labels: Any) -> Tensor:
    return output


def check_k(k: Any, n_train: int | None) -> None:
    """``k`` for top-k queries: ``None`` (all scores) or an int from 0 to the training size."""
    if k is None:
        return
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int or None, got {k!r}")
    if k < 0:
        raise ArgumentError(f"k must be at least 0, got {k}")
    if n_train is not None and k > n_train:
        raise ArgumentError(f"k={k} is larger than the training data ({n_train} examples)")


def dataset_size(loader: Any) -> int | None:
    try:
        return len(loader.dataset)
    except (TypeError, AttributeError):
        return None


class TopK:
    """Running top-k over score blocks that arrive training batch by training batch."""

    def __init__(self, k: int, largest: bool) -> None:
        self.k, self.largest = k, largest
        self.scores: Tensor | None = None
        self.indices: Tensor | None = None
        self.seen = 0

    def add(self, block: Tensor) -> None:
        """Fold a ``(n_test, b)`` block of scores for the next ``b`` training examples."""
        idx = torch.arange(self.seen, self.seen + block.shape[1], device=block.device)
        idx = idx.expand(block.shape[0], -1)
        self.seen += block.shape[1]
        if self.scores is not None and self.indices is not None:
            block = torch.cat([self.scores, block], dim=1)
            idx = torch.cat([self.indices, idx], dim=1)
        k = min(self.k, block.shape[1])
        scores, pos = torch.topk(block, k, dim=1, largest=self.largest)
        self.scores, self.indices = scores, torch.gather(idx, 1, pos)

    def result(self, n_test: int, like: Tensor | None = None) -> KMostInfluentialResults:
        if self.scores is None or self.indices is None:
            dtype = like.dtype if like is not None else torch.get_default_dtype()
            return KMostInfluentialResults(
                torch.zeros(n_test, 0, dtype=torch.long), torch.zeros(n_test, 0, dtype=dtype)
            )
        return KMostInfluentialResults(self.indices, self.scores)


def top_k(scores: Tensor, k: int, proponents: bool) -> KMostInfluentialResults:
    """Top-k of a full ``(n_test, n_train)`` score matrix."""
    acc = TopK(k, proponents)
    acc.add(scores)
    return acc.result(scores.shape[0], scores)
