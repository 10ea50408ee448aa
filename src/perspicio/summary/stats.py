"""Running statistics over a stream of equally shaped tensors, element by element.

Each `update(x)` adds one sample ``x``; statistics are taken over samples, separately for
every element of ``x``. Mean and variance use Welford's running update (numerically stable);
a whole batch of samples merges in one step with Chan et al.'s pairwise formula.

A stat that needs another (``Var`` needs ``MSE`` and ``Count``, ``MSE`` needs ``Mean``)
names it in `dependencies`; a summarizer adds missing dependencies and updates them first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar, Union

import torch
from torch import Tensor

from perspicio._core.validate import ArgumentError

__all__ = [
    "MSE",
    "CommonStats",
    "Count",
    "Max",
    "Mean",
    "Min",
    "Stat",
    "StatValue",
    "StdDev",
    "Sum",
    "Var",
]

StatValue: TypeAlias = Union[Tensor, int, float]  # noqa: UP007 (a runtime alias)

_S = TypeVar("_S", bound="Stat")


class Stat:
    """A statistic updated one sample at a time.

    Two stats are equal when they have the same class and parameters (the display name does
    not count), so a summarizer keeps one of each. Subclasses implement `update` and `get`,
    may resolve other stats in `init` with `_get_stat`, and list them in `dependencies`.

    Args:
        name: Key of this stat in a summary; default from the class name and parameters.
        **kwargs: The parameters that make this stat distinct (e.g. ``order``).
    """

    # True when `_update_batch` equals per-sample updates (all built-in stats).
    _batch_safe = False

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        self.params = kwargs
        self._name = name
        self._other_stats: Any = None

    def dependencies(self) -> list[Stat]:
        """Stats this one reads; a summarizer creates any that are missing."""
        return []

    def init(self) -> None:
        """Called once the stat belongs to a summarizer; look up dependencies here."""

    def _get_stat(self, stat: _S) -> _S | None:
        """The summarizer's stat equal to `stat`, or None."""
        return None if self._other_stats is None else self._other_stats.get(stat)

    def _require(self, stat: _S) -> _S:
        found = self._get_stat(stat)
        if found is None:
            raise ArgumentError(
                f"{type(self).__name__} needs {type(stat).__name__} in the same summarizer; "
                "build summarizers with Summarizer(stats), which adds dependencies"
            )
        return found

    def update(self, x: Tensor) -> None:
        """Add one sample."""
        raise NotImplementedError

    def _update_batch(self, xs: Tensor) -> None:
        """Add the samples ``xs[0], xs[1], ...`` (override with a vectorised version)."""
        for x in xs:
            self.update(x)

    def get(self) -> StatValue | None:
        """The current value (None before any sample)."""
        raise NotImplementedError

    def __hash__(self) -> int:
        return hash((type(self), frozenset(self.params.items())))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stat):
            return NotImplemented
        return type(self) is type(other) and self.params == other.params

    @property
    def name(self) -> str:
        """The key of this stat in a summary."""
        if self._name is not None:
            return self._name
        base = type(self).__name__.lower()
        if not self.params:
            return base
        args = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        return f"{base}({args})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Count(Stat):
    """Number of samples seen.

    Example:
        >>> from perspicio.summary import Summarizer
        >>> s = Summarizer([Count()]); s.update(torch.ones(2)); s.update(torch.ones(2))
        >>> s.summary
        {'count': 2}
    """

    _batch_safe = True

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)
        self.n: int | None = None

    def get(self) -> int | None:
        return self.n

    def update(self, x: Tensor) -> None:
        self.n = (self.n or 0) + 1

    def _update_batch(self, xs: Tensor) -> None:
        self.n = (self.n or 0) + int(xs.shape[0])


def _dependency(stat: Stat, dep: _S | None, what: str) -> _S:
    """``stat``'s dependency, or a clear error when ``stat`` is used outside a Summarizer."""
    if dep is None:
        raise RuntimeError(
            f"{type(stat).__name__} depends on {what}, which a Summarizer creates and updates: "
            f"use it through one, e.g. Summarizer([{type(stat).__name__}()])"
        )
    return dep


def _floating(x: Tensor) -> Tensor:
    return x if x.is_floating_point() else x.double()


class Mean(Stat):
    """Running mean (integer inputs give float64).

    Example:
        >>> from perspicio.summary import Summarizer
        >>> s = Summarizer([Mean()])
        >>> for v in (1.0, 2.0, 6.0): s.update(torch.tensor([v]))
        >>> s.summary["mean"]
        tensor([3.])
    """

    _batch_safe = True

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)
        self.rolling_mean: Tensor | None = None
        self.n: Count | None = None

    def dependencies(self) -> list[Stat]:
        return [Count()]

    def init(self) -> None:
        self.n = self._require(Count())

    def get(self) -> Tensor | None:
        return self.rolling_mean

    def _total(self) -> int:
        count = _dependency(self, self.n, "Count")
        if count.n is None:
            raise RuntimeError("Mean needs its Count updated first: update it through a Summarizer")
        return count.n

    def update(self, x: Tensor) -> None:
        if self.rolling_mean is None:
            self.rolling_mean = _floating(x).clone()
            return
        self.rolling_mean = self.rolling_mean + (x - self.rolling_mean) / self._total()

    def _update_batch(self, xs: Tensor) -> None:
        batch_mean = _floating(xs).mean(dim=0)
        if self.rolling_mean is None:
            self.rolling_mean = batch_mean
            return
        share = xs.shape[0] / self._total()  # the batch's share of all samples so far
        self.rolling_mean = self.rolling_mean + (batch_mean - self.rolling_mean) * share


class MSE(Stat):
    """Running sum of squared deviations from the mean (``M2`` in Welford's method).

    Despite the name this is a sum, not a mean: ``Var`` divides it by the sample count.
    """

    _batch_safe = True

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)
        self.prev_mean: Tensor | None = None
        self.mse: Tensor | None = None
        self.mean: Mean | None = None

    def dependencies(self) -> list[Stat]:
        return [Mean()]

    def init(self) -> None:
        self.mean = self._require(Mean())

    def get(self) -> Tensor | None:
        if self.mse is None and self.prev_mean is not None:
            return torch.zeros_like(self.prev_mean)
        return self.mse

    def _add(self, term: Tensor) -> None:
        self.mse = term if self.mse is None else self.mse + term

    def _mean(self) -> Tensor:
        mean = _dependency(self, self.mean, "Mean").get()
        if mean is None:
            raise RuntimeError("MSE needs its Mean updated first: update it through a Summarizer")
        return mean

    def update(self, x: Tensor) -> None:
        mean = self._mean()
        if self.prev_mean is not None:
            self._add((x - self.prev_mean) * (x - mean))
        self.prev_mean = mean.clone()

    def _update_batch(self, xs: Tensor) -> None:
        mean = self._mean()
        xs = xs.to(mean.dtype)
        batch_mean = xs.mean(dim=0)
        batch_m2 = ((xs - batch_mean) ** 2).sum(dim=0)
        if self.prev_mean is None:
            if xs.shape[0] > 1:
                self._add(batch_m2)
        else:
            n_batch = xs.shape[0]
            n_before = _dependency(self, self.mean, "Mean")._total() - n_batch
            delta = batch_mean - self.prev_mean
            self._add(batch_m2 + delta**2 * (n_before * n_batch / (n_before + n_batch)))
        self.prev_mean = mean.clone()


class Var(Stat):
    """Variance ``M2 / (n - order)``: ``order=0`` population, ``order=1`` sample variance.

    Returned as float64; zeros while ``n <= order``.
    """

    _batch_safe = True

    def __init__(self, name: str | None = None, order: int = 0) -> None:
        if name is None:
            name = {0: "variance", 1: "sample_variance"}.get(order, f"variance({order})")
        super().__init__(name=name, order=order)
        self.order = order
        self.mse_stat: MSE | None = None
        self.n_stat: Count | None = None

    def dependencies(self) -> list[Stat]:
        return [MSE(), Count()]

    def init(self) -> None:
        self.mse_stat = self._require(MSE())
        self.n_stat = self._require(Count())

    def update(self, x: Tensor) -> None:
        pass

    def _update_batch(self, xs: Tensor) -> None:
        pass

    def get(self) -> Tensor | None:
        mse = _dependency(self, self.mse_stat, "MSE").get()
        n = _dependency(self, self.n_stat, "Count").get()
        if mse is None:
            return None
        if n is None or n <= self.order:
            return torch.zeros_like(mse, dtype=torch.float64)
        return mse.to(torch.float64) / (n - self.order)


class StdDev(Stat):
    """Standard deviation, the square root of ``Var(order)`` (float64).

    Example:
        >>> from perspicio.summary import Summarizer
        >>> s = Summarizer([StdDev(order=1)])
        >>> for v in (1.0, 3.0): s.update(torch.tensor(v))
        >>> s.summary
        {'sample_std_dev': tensor(1.4142, dtype=torch.float64)}
    """

    _batch_safe = True

    def __init__(self, name: str | None = None, order: int = 0) -> None:
        if name is None:
            name = {0: "std_dev", 1: "sample_std_dev"}.get(order, f"std_dev({order})")
        super().__init__(name=name, order=order)
        self.order = order
        self.var_stat: Var | None = None

    def dependencies(self) -> list[Stat]:
        return [Var(order=self.order)]

    def init(self) -> None:
        self.var_stat = self._require(Var(order=self.order))

    def update(self, x: Tensor) -> None:
        pass

    def _update_batch(self, xs: Tensor) -> None:
        pass

    def get(self) -> Tensor | None:
        var = _dependency(self, self.var_stat, "Var").get()
        return None if var is None else var.sqrt()


class _Fold(Stat):
    """``result = fn(result, x)`` over the samples; the first sample starts the fold."""

    _batch_safe = True

    def __init__(
        self,
        fn: Callable[[Tensor, Tensor], Tensor],
        name: str | None,
        default_fn: Callable[..., Any],
        reduce: Callable[[Tensor], Tensor],
    ) -> None:
        super().__init__(name=name)
        self.result: Tensor | None = None
        self.fn = fn
        # With the default `fn`, folding a batch equals `reduce` over its dim 0.
        self._reduce = reduce if fn is default_fn else None

    def get(self) -> Tensor | None:
        return self.result

    def update(self, x: Tensor) -> None:
        self.result = x.clone() if self.result is None else self.fn(self.result, x)

    def _update_batch(self, xs: Tensor) -> None:
        if self._reduce is None:
            super()._update_batch(xs)
            return
        folded = self._reduce(xs)
        self.result = folded if self.result is None else self.fn(self.result, folded)

    @property
    def name(self) -> str:
        return self._name if self._name is not None else type(self).__name__.lower()


class Min(_Fold):
    """Element-wise minimum, folded with `min_fn` (default `torch.min`)."""

    def __init__(
        self,
        name: str | None = None,
        min_fn: Callable[[Tensor, Tensor], Tensor] = torch.min,
    ) -> None:
        super().__init__(min_fn, name, torch.min, lambda xs: xs.amin(dim=0))


class Max(_Fold):
    """Element-wise maximum, folded with `max_fn` (default `torch.max`)."""

    def __init__(
        self,
        name: str | None = None,
        max_fn: Callable[[Tensor, Tensor], Tensor] = torch.max,
    ) -> None:
        super().__init__(max_fn, name, torch.max, lambda xs: xs.amax(dim=0))


class Sum(_Fold):
    """Element-wise sum, folded with `add_fn` (default `torch.add`); keeps the input dtype."""

    def __init__(
        self,
        name: str | None = None,
        add_fn: Callable[[Tensor, Tensor], Tensor] = torch.add,
    ) -> None:
        super().__init__(add_fn, name, torch.add, lambda xs: xs.sum(dim=0, dtype=xs.dtype))


def CommonStats() -> list[Stat]:
    """Mean, sample variance, sample standard deviation, min and max.

    Example:
        >>> [stat.name for stat in CommonStats()]
        ['mean', 'sample_variance', 'sample_std_dev', 'min', 'max']
    """
    return [Mean(), Var(order=1), StdDev(order=1), Min(), Max()]
