"""Methods that call other methods: per-example arguments, nested results, sample reductions.

NoiseTunnel, the explanation metrics (infidelity, sensitivity) and the wrappers to come (attack
comparison, TCAV, LLM attribution) call an attribution method, or a model, many times on
modified copies of a batch. Three pieces serve them all:

* :class:`PerExample`: the wrapped method's keyword arguments, knowing which are per example
  (one value per example of the batch) so that they follow the batch when it is repeated
  (each example ``k`` times in place, ``[x0, x0, x1, x1]``) or cut into rows;
* :func:`flatten` / :class:`Structure`: the tensors of a nested result (a tensor, a tuple of
  tensors, ``(attributions, delta)``, ...) as one flat list, and the way back;
* :func:`reduce_samples`: the one loop over chunks of samples (on
  :func:`perspicio._core.chunks.chunks`) that folds per-sample results into a sum, a maximum
  or a concatenation over samples.

Which arguments are per example follows Captum: a list target or a target tensor of more than
one element, and every tensor among the additional forward args, baselines and feature masks
whose first dimension is the batch size (for baselines and masks only when that is more than
one: a single row is shared by every example and stays shared).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import torch
from torch import Tensor

from perspicio._core.call import Tensors
from perspicio._core.chunks import chunks
from perspicio._core.sites import LayerSite
from perspicio._core.validate import ArgumentError

PER_EXAMPLE_KEYS = ("target", "additional_forward_args", "baselines", "feature_mask")
"""Keyword arguments that may hold one value per example (see the module docstring)."""

_SHARED_WHEN_ONE = ("baselines", "feature_mask")

Rows: TypeAlias = Callable[[Tensor], Tensor]


def _map_rows(value: Any, n: int, rows: Rows, shared_when_one: bool) -> Any:
    """``rows`` applied to every per-example tensor in ``value`` (a tensor or a tuple)."""
    if isinstance(value, Tensor):
        per_example = value.dim() > 0 and value.shape[0] == n and not (shared_when_one and n == 1)
        return rows(value) if per_example else value
    if isinstance(value, tuple):
        return tuple(_map_rows(v, n, rows, shared_when_one) for v in value)
    return value


def _map_target(target: Any, n: int, rows: Rows) -> Any:
    if isinstance(target, list) and len(target) == n:
        index = rows(torch.arange(n)).tolist()
        return [target[i] for i in index]
    if isinstance(target, Tensor) and target.numel() > 1 and target.shape[0] == n:
        return rows(target)
    return target


@dataclass(frozen=True)
class PerExample:
    """The keyword arguments of a wrapped call on a batch of ``batch_size`` examples.

    Attributes:
        kwargs: the arguments, as the user gave them.
        batch_size: the number of examples in the batch they belong to.
        keys: the arguments that may hold per-example values; any other is passed as is.

    Example:
        >>> import torch
        >>> from perspicio._core.wrapped import PerExample
        >>> kw = PerExample({"target": [3, 5], "n_steps": 8}, batch_size=2)
        >>> kw.repeat(2)
        {'target': [3, 3, 5, 5], 'n_steps': 8}
        >>> kw.rows(1, 2)
        {'target': [5], 'n_steps': 8}
    """

    kwargs: Mapping[str, Any]
    batch_size: int
    keys: Sequence[str] = PER_EXAMPLE_KEYS

    def map(self, rows: Rows) -> dict[str, Any]:
        """The arguments with ``rows`` (a function of a per-example tensor) applied to each
        per-example value; lists of per-example targets follow the same row selection."""
        n, out = self.batch_size, dict(self.kwargs)
        for key in self.keys:
            if key not in out:
                continue
            if key == "target":
                out[key] = _map_target(out[key], n, rows)
            else:
                out[key] = _map_rows(out[key], n, rows, key in _SHARED_WHEN_ONE)
        return out

    def repeat(self, times: int) -> dict[str, Any]:
        """The arguments for the batch with every example repeated ``times`` times in place."""
        return self.map(lambda t: t.repeat_interleave(times, dim=0))

    def rows(self, start: int, stop: int) -> dict[str, Any]:
        """The arguments for examples ``start .. stop-1`` of the batch."""
        return self.map(lambda t: t[start:stop])


@dataclass(frozen=True)
class Structure:
    """The shape of a nested result: how :func:`flatten`'s list of tensors is put back."""

    kind: type | None  # None: a single tensor
    parts: tuple[tuple[int, Structure], ...] = ()

    def rebuild(self, flat: Sequence[Tensor]) -> Any:
        """The nested result with ``flat`` in place of the flattened tensors."""
        if self.kind is None:
            return flat[0]
        out, i = [], 0
        for count, sub in self.parts:
            out.append(sub.rebuild(flat[i : i + count]))
            i += count
        return self.kind(out)


def flatten(result: Any) -> tuple[list[Tensor], Structure]:
    """The tensors of a result nested in tuples and lists, in order, and its structure.

    Example:
        >>> import torch
        >>> from perspicio._core.wrapped import flatten
        >>> flat, structure = flatten(((torch.zeros(1), torch.ones(1)), torch.ones(2)))
        >>> len(flat)
        3
        >>> structure.rebuild([t + 1 for t in flat])
        ((tensor([1.]), tensor([2.])), tensor([2., 2.]))
    """
    if isinstance(result, Tensor):
        return [result], Structure(None)
    if isinstance(result, tuple | list):
        flat: list[Tensor] = []
        parts = []
        for item in result:
            ts, sub = flatten(item)
            parts.append((len(ts), sub))
            flat.extend(ts)
        return flat, Structure(type(result), tuple(parts))
    raise TypeError(f"expected tensors (in tuples or lists), got {type(result).__name__}")


Reduction = Literal["sum", "max", "cat"]


def _reduce_chunk(t: Tensor, how: Reduction) -> Tensor:
    if how == "sum":
        return t.sum(1)
    if how == "max":
        return t.max(1).values
    return t


def _combine(a: Tensor, b: Tensor, how: Reduction) -> Tensor:
    if how == "sum":
        return a + b
    if how == "max":
        return torch.maximum(a, b)
    return torch.cat([a, b], dim=1)


def reduce_samples(
    n_samples: int,
    per_chunk: int | None,
    run: Callable[[int, int], Any],
    how: Reduction | Sequence[Reduction] = "sum",
) -> Any:
    """Results for ``n_samples`` samples per example, computed a chunk at a time and reduced.

    ``run(start, stop)`` returns the results of samples ``start .. stop-1``: tensors (nested in
    tuples or lists) of shape ``(N, stop - start, ...)``, samples on dimension 1. Chunks hold
    at most ``per_chunk`` samples (``None``: all). Each tensor is reduced over its samples:
    ``"sum"`` and ``"max"`` give ``(N, ...)``, ``"cat"`` keeps them all, ``(N, n_samples,
    ...)``. ``how`` is one reduction for every tensor or one per element of ``run``'s tuple.
    Sums are taken within each chunk, then added chunk by chunk in order.

    Example:
        >>> import torch
        >>> from perspicio._core.wrapped import reduce_samples
        >>> draws = torch.arange(10.0).reshape(2, 5)  # 2 examples, 5 samples
        >>> total, top = reduce_samples(5, 2, lambda a, b: (draws[:, a:b], draws[:, a:b]),
        ...                             how=("sum", "max"))
        >>> total, top
        (tensor([10., 35.]), tensor([4., 9.]))
    """
    state: list[Tensor] | None = None
    structure: Structure | None = None
    leaf_how: list[Reduction] = []
    for start, stop in chunks(n_samples, per_chunk):
        out = run(start, stop)
        flat, structure = flatten(out)
        if state is None:
            leaf_how = _leaf_reductions(structure, len(flat), how)
            state = [_reduce_chunk(t, h) for t, h in zip(flat, leaf_how)]
        else:
            state = [_combine(s, _reduce_chunk(t, h), h) for s, t, h in zip(state, flat, leaf_how)]
    if state is None or structure is None:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    return structure.rebuild(state)


def _leaf_reductions(
    structure: Structure, n_flat: int, how: Reduction | Sequence[Reduction]
) -> list[Reduction]:
    """One reduction per flattened tensor."""
    if isinstance(how, str):
        return [how] * n_flat
    if structure.kind is None or len(how) != len(structure.parts):
        parts = len(structure.parts) if structure.kind is not None else 1
        raise ValueError(f"reduce_samples got {len(how)} reductions for a result of {parts} parts")
    return [h for h, (count, _) in zip(how, structure.parts) for _ in range(count)]


class LayerNoise:
    """A Layer method that NoiseTunnel may perturb at its layer instead of at its inputs.

    Noise cannot be added to integer inputs (token ids). For such inputs NoiseTunnel draws the
    noise in the space of the method's layer (an embedding, say) and the method adds it to the
    layer's values at the inputs (see :meth:`noisy`); baselines stay clean.
    """

    _noise: Tensors | None = None

    def noise_site(self, kwargs: dict[str, Any]) -> LayerSite:
        """Where the noise goes, given the ``attribute`` keyword arguments."""
        site: LayerSite = self._site(bool(kwargs.get("attribute_to_layer_input", False)))  # type: ignore[attr-defined]
        if len(site.layers) != 1:
            raise ArgumentError(
                "NoiseTunnel puts the noise for integer inputs on the method's layer: "
                "give the method a single layer"
            )
        return site

    @contextmanager
    def layer_noise(self, noise: Tensors) -> Iterator[None]:
        """Inside the block, :meth:`noisy` adds ``noise`` to the layer's values."""
        self._noise = noise
        try:
            yield
        finally:
            self._noise = None

    def noisy(self, values: Tensors) -> Tensors:
        """The layer's values at the inputs, plus NoiseTunnel's noise when there is some."""
        if self._noise is None:
            return values
        return tuple(v + e.to(v.dtype) for v, e in zip(values, self._noise))
