"""The sampling side of LIME and Kernel SHAP, shared by both (Ribeiro et al., 2016).

A :class:`Problem` is one call in normal form: the inputs, baselines and target, the feature
masks and how many surrogates are fitted (one per example, or one for a batch whose model
returns a single value). Samples are drawn up front, as coalitions over the feature groups
(:class:`Coalitions`, the fast path) or as model inputs produced by the user's functions
(:class:`Explicit`); a :class:`SamplePlan` stacks sample ``s`` of every example into one
perturbation of the sweep engine and collects the outputs; :func:`attributions` lays the
fitted coefficients out in the inputs' shapes.

The fast path draws **one set of coalitions shared by all examples**. Each example's samples
have exactly the distribution of separate per-example draws (so each example's estimate is
the same random quantity), an example's result does not depend on the other examples in
the batch (with the same seed it is the one it gets alone), and where the sample weights are
shared too (Kernel SHAP) a single Gram matrix and factorisation serve every surrogate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from perspicio._core.call import Call, TensorOrTensors, Tensors, replaced_dtype
from perspicio._core.forward import run_forward
from perspicio._core.masks import FeatureGroups
from perspicio._core.sweep import objective
from perspicio._core.target import flat_rows
from perspicio._core.validate import ArgumentError


@dataclass(frozen=True)
class Problem:
    """A Lime/KernelShap call in normal form: ``rows`` surrogates (N, or 1 for the batch)."""

    call: Call
    masks: Tensors  # ids shifted to start at 0, one per input (Captum's interpretable ids)
    groups: FeatureGroups  # the same masks, numbered densely
    width: int  # Captum's num_interp_features: max id + 1
    n_samples: int
    rows: int

    @property
    def baselines(self) -> Tensors:
        assert self.call.baselines is not None
        return self.call.baselines


class Coalitions:
    """Samples given as coalitions over the dense features: ``z`` ``(1, S, F)`` bool, shared by
    every surrogate (or ``(R, S, F)``, one set per surrogate)."""

    def __init__(self, problem: Problem, z: Tensor) -> None:
        self.p, self.z = problem, z
        self.count = z.shape[1]
        n_feat = problem.groups.n_features
        self.index: list[Tensor | None] = []  # per input: scalar -> feature, None if identity
        for d in problem.groups.dense:
            flat = d.reshape(-1)
            same = d.shape[0] == 1 and flat.numel() == n_feat
            same = same and torch.equal(flat, torch.arange(n_feat, device=flat.device))
            self.index.append(None if same else flat)
        self.zero_base = [not bool(b.any()) for b in problem.baselines]

    def _bits(self, on: Tensor, i: int) -> Tensor:
        """Whether each scalar of input ``i`` is on: ``(k, 1 or N, *S)`` from ``on`` (k, 1 or R,
        F)."""
        dense, index = self.p.groups.dense[i], self.index[i]
        if dense.shape[0] > 1:  # per-example masks
            return self.p.groups.select(on[:, 0] if on.shape[1] == 1 else on)[i]
        bits = on if index is None else on.index_select(2, index.to(on.device))
        return bits.reshape(*on.shape[:2], *dense.shape[1:])

    def inputs(self, start: int, stop: int) -> Tensors:
        on = self.z[:, start:stop].transpose(0, 1)  # (k, R, F)
        out = []
        for i, (x, b) in enumerate(zip(self.p.call.inputs, self.p.baselines)):
            bits = self._bits(on, i)
            if not x.is_floating_point():
                dtype = replaced_dtype(x, b)
                pert = torch.where(bits, x.to(dtype), b.to(dtype))
            elif self.zero_base[i]:
                pert = x * bits
            else:  # exact, as one term is zero (and faster than torch.where on CPU)
                pert = x * bits + b.to(x.dtype) * ~bits
            k = stop - start
            out.append(pert.expand(k, *x.shape).reshape(k * x.shape[0], *x.shape[1:]))
        return tuple(out)

    def design(self) -> tuple[Tensor, Tensor]:
        """The regression inputs ``(1 or R, S, F)`` and their columns among Captum's ids."""
        return self.z, self.p.groups.ids


class Explicit:
    """Samples from user functions: interpretable vectors, model inputs and weights."""

    def __init__(self, interp: Tensor, stacked: list[Tensors], weights: Tensor) -> None:
        self.interp, self.stacked, self.weights = interp, stacked, weights
        self.count = interp.shape[1]
        # user transforms may give inputs of other shapes (texts of other lengths): those
        # cannot share a forward pass, and go one per pass
        shapes = {tuple((t.shape[1:], t.dtype) for t in ts) for ts in stacked}
        self.stackable = len(shapes) <= 1

    def inputs(self, start: int, stop: int) -> Tensors:
        parts = self.stacked[start:stop]
        return tuple(torch.cat(ts) for ts in zip(*parts))

    def design(self) -> tuple[Tensor, Tensor]:
        cols = torch.arange(self.interp.shape[2], device=self.interp.device)
        return self.interp, cols


Samples = Coalitions | Explicit


class SamplePlan:
    """Sweep plan: sample ``s`` of every row stacked in one perturbation; folds the outputs."""

    def __init__(self, samples: Samples, rows: int, whole: bool = False) -> None:
        self.samples, self.rows, self.whole = samples, rows, whole
        self.total = samples.count
        self.stackable = getattr(samples, "stackable", True)
        self.y: Tensor | None = None

    def perturb(self, start: int, stop: int) -> Tensors:
        return self.samples.inputs(start, stop)

    def fold(self, start: int, stop: int, evals: Tensor, base: Tensor) -> None:
        if evals.shape[1] != self.rows:
            need = (
                "LimeBase fits one model to the whole input and needs one value for it"
                if self.whole
                else "Lime and KernelShap need one value per example (choose it with target) "
                "or one for the whole batch"
            )
            raise ArgumentError(
                f"forward_func returned {evals.shape[1]} value(s) per perturbed input where "
                f"{self.rows} were expected: {need}"
            )
        if self.y is None:
            self.y = evals.new_zeros(self.rows, self.total)
        self.y[:, start:stop] = evals.T


def bernoulli(p: Problem) -> Tensor:
    """Uniformly random coalitions ``(1, S, F)``, shared by every surrogate (Lime's default).

    Built from random bytes, eight coalition bits per byte (8x fewer random numbers).
    """
    device, f = p.call.inputs[0].device, p.groups.n_features
    raw = torch.randint(0, 256, (1, p.n_samples, -(-f // 8)), dtype=torch.uint8, device=device)
    bits = torch.arange(8, dtype=torch.uint8, device=device)
    return ((raw.unsqueeze(3) >> bits) & 1).reshape(1, p.n_samples, -1)[..., :f].bool()


def uniform_subsets(sizes: Tensor, m: int) -> Tensor:
    """``(n, m)`` bool: row ``i`` is a uniformly random subset of ``range(m)`` of ``sizes[i]``.

    The positions of the ``sizes[i]`` smallest of ``m`` random keys. On the CPU the keys are
    ordered by NumPy, whose vectorised sort is several times faster than torch's on short
    rows; the keys come from torch's generator, so ``torch.manual_seed`` decides the result.
    """
    device = sizes.device
    keys = torch.rand(sizes.shape[0], m, device=device)
    if device.type == "cpu":
        order = torch.from_numpy(np.argsort(keys.numpy(), axis=1))
    else:
        order = keys.argsort(1)
    first = torch.arange(m, device=device) < sizes.unsqueeze(1)
    return torch.zeros_like(first).scatter_(1, order, first)


def example_slice(value: Any, i: int, n: int) -> Any:
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n and n > 1:
        return value[i : i + 1]
    return value


def group_sums(values: Tensors, groups: FeatureGroups, rows: int) -> Tensor:
    """``(rows, F)`` sums of ``values`` over each feature group (per example, or all of them)."""
    n = values[0].shape[0]
    out = torch.zeros(n, groups.n_features, dtype=torch.float64, device=values[0].device)
    for v, d in zip(values, groups.dense):
        index = flat_rows(d.to(v.device).expand(n, *v.shape[1:]))
        out.scatter_add_(1, index, flat_rows(v).to(torch.float64))
    return out if rows == n else out.sum(0, keepdim=True)


def count_surrogates(forward_func: Callable[..., Any], call: Call, future: bool) -> int:
    """One surrogate per example, or one for the batch when the model returns one value."""
    n = call.batch_size
    if n == 1:
        return 1
    with torch.no_grad():
        out = objective(run_forward(forward_func, call.inputs, call.args), call.target)
    if isinstance(out, torch._C.Future) != future:  # .then() gives the C++ base class
        raise TypeError(
            "attribute_future needs a forward_func that returns a torch.futures.Future"
            if future
            else "forward_func returned a torch.futures.Future: call attribute_future instead"
        )
    out = torch.as_tensor(out.wait() if future else out)
    if out.numel() == n:
        return n
    if out.numel() == 1:
        return 1
    raise ArgumentError(
        f"forward_func returned shape {tuple(out.shape)} for {n} examples: Lime and KernelShap "
        "need one value per example (choose it with target) or one for the whole batch"
    )


def attributions(
    p: Problem, coef: Tensor, cols: Tensor, return_input_shape: bool
) -> TensorOrTensors:
    """Coefficients ``(R, C)`` (design columns ``cols`` among Captum's ids) as attributions."""
    ids = torch.zeros(coef.shape[0], p.width, dtype=coef.dtype, device=coef.device)
    ids[:, cols.to(coef.device)] = coef
    if not return_input_shape:
        return ids
    dense = ids[:, p.groups.ids.to(coef.device)]
    n = p.call.batch_size
    if p.rows < n and p.groups.per_example:  # one surrogate, laid out on the first example
        return p.call.restore([t[:1] for t in p.groups.spread(dense.expand(n, -1))])
    return p.call.restore(p.groups.spread(dense))


class Sampler(Protocol):
    """Batched sampling for the default functions: coalitions and their weights."""

    def draw(self, p: Problem) -> Tensor:
        """Coalitions ``(1, S, F)`` (bool) over the dense features, shared by all surrogates."""
        ...

    def weights(self, p: Problem, z: Tensor) -> Tensor:
        """Sample weights ``(R, S)`` of the coalitions ``z`` (``(1, S)`` where shared)."""
        ...
