"""Call normalisation: one object carrying a call's inputs, baselines, target and extra args.

Every algorithm builds a :class:`Call` from the user's arguments once. The call knows how to
repeat itself (for path steps, samples or perturbations), slice itself (for chunks) and give
results back in the user's form (a tensor in, a tensor out; a tuple in, a tuple out). All
validation of user arguments happens while the call is built, before any model evaluation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeAlias

import torch
from torch import Tensor

from perspicio._core.target import Target, normalize_target
from perspicio._core.validate import ArgumentError

Tensors: TypeAlias = tuple[Tensor, ...]
TensorOrTensors: TypeAlias = Tensor | tuple[Tensor, ...]
BaselineType: TypeAlias = int | float | Tensor | tuple[int | float | Tensor, ...] | None


def as_tensors(value: Any, name: str = "inputs") -> Tensors:
    """``value`` as a non-empty tuple of tensors, or a ``TypeError`` naming ``name``."""
    items = tuple(value) if isinstance(value, tuple | list) else (value,)
    if not items:
        raise ArgumentError(f"{name} must hold at least one tensor, got an empty {type(value)}")
    for i, item in enumerate(items):
        if not isinstance(item, Tensor):
            where = f"{name}[{i}]" if isinstance(value, tuple | list) else name
            raise TypeError(f"{where} must be a torch.Tensor, got {type(item).__name__}")
    return items


def batch_size_of(inputs: Tensors, name: str = "inputs", sparse: bool = False) -> int:
    """The shared first dimension of ``inputs``; a ``ValueError`` if they disagree.

    With ``sparse=True`` the first input sets the batch size and the others may differ
    (Captum's "sparse" inputs, e.g. a list of indices: perturbation methods pass them to the
    model whole, repeated with every perturbation, and share their feature masks).
    """
    for i, x in enumerate(inputs):
        if x.dim() == 0:
            raise ArgumentError(f"{name}[{i}] must have a batch dimension, got a 0-d tensor")
    sizes = [x.shape[0] for x in inputs]
    if len(set(sizes)) > 1 and not sparse:
        raise ArgumentError(
            f"every tensor in {name} needs the same batch size (dim 0), got {sizes}"
        )
    return sizes[0]


def check_float(inputs: Tensors, name: str = "inputs") -> None:
    """Gradient methods need floating-point inputs."""
    for i, x in enumerate(inputs):
        if not x.is_floating_point():
            raise TypeError(
                f"{name}[{i}] has dtype {x.dtype}: gradient-based attribution needs "
                "floating-point inputs (for token ids attribute to the embedding layer "
                "with a Layer method)"
            )


def check_finite(tensors: Tensors, name: str = "inputs", who: str = "this method") -> None:
    """A clear error for NaN or infinite values, which ``who`` cannot work with."""
    for i, x in enumerate(tensors):
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ArgumentError(
                f"{name}[{i}] holds NaN or infinite values: {who} needs finite {name} "
                "(the surrogate model cannot be fitted to them)"
            )


def format_args(args: Any) -> tuple[Any, ...]:
    """Captum's rule: ``None`` is no args, a tuple is many args, anything else is one arg."""
    if args is None:
        return ()
    return args if isinstance(args, tuple) else (args,)


def _expand_rows(value: Any, n_rows: int, times: int, interleave: bool) -> Any:
    """Repeat a per-example tensor ``times`` times along dim 0; leave anything else alone."""
    if not isinstance(value, Tensor) or value.dim() == 0 or value.shape[0] != n_rows:
        return value
    if interleave:
        return value.repeat_interleave(times, dim=0)
    return value.repeat(times, *([1] * (value.dim() - 1)))


def _slice_rows(value: Any, n_rows: int, rows: slice | Tensor) -> Any:
    if not isinstance(value, Tensor) or value.dim() == 0 or value.shape[0] != n_rows:
        return value
    return value[rows]


@dataclass(frozen=True)
class Call:
    """One attribution call in normal form.

    Attributes:
        inputs: the tensors being attributed, each with batch dimension ``batch_size``.
        target: the normalised target (see :mod:`perspicio._core.target`).
        args: additional forward args, appended after the inputs when the model is called.
        is_tuple: whether the user passed a tuple (results come back as a tuple).
        baselines: one tensor per input, each broadcastable to its input, or ``None``.
    """

    inputs: Tensors
    target: Target
    args: tuple[Any, ...] = ()
    is_tuple: bool = True
    baselines: Tensors | None = None

    @property
    def batch_size(self) -> int:
        return int(self.inputs[0].shape[0])

    def with_inputs(self, inputs: Tensors) -> Call:
        return replace(self, inputs=tuple(inputs))

    def repeat(self, times: int, interleave: bool = False, inputs: bool = True) -> Call:
        """The call with every per-example value repeated ``times`` times along the batch.

        ``interleave=False`` tiles the batch (``[x0, x1, x0, x1]``, used for path steps);
        ``interleave=True`` repeats each example in place (``[x0, x0, x1, x1]``, samples).
        ``inputs=False`` leaves the inputs and baselines as they are, for callers that
        build the stacked inputs themselves (only the target and the args are repeated).
        """
        n = self.batch_size
        exp: Callable[[Any], Any] = lambda v: _expand_rows(v, n, times, interleave)  # noqa: E731
        if not inputs:
            return replace(
                self,
                target=self.target.repeat(times, interleave),
                args=tuple(exp(a) for a in self.args),
            )
        baselines = None if self.baselines is None else tuple(exp(b) for b in self.baselines)
        return Call(
            inputs=tuple(exp(x) for x in self.inputs),
            target=self.target.repeat(times, interleave),
            args=tuple(exp(a) for a in self.args),
            is_tuple=self.is_tuple,
            baselines=baselines,
        )

    def rows(self, rows: slice | Tensor) -> Call:
        """The sub-call holding only the given rows of every per-example value."""
        n = self.batch_size
        baselines = None
        if self.baselines is not None:
            baselines = tuple(_slice_rows(b, n, rows) for b in self.baselines)
        return Call(
            inputs=tuple(x[rows] for x in self.inputs),
            target=self.target.rows(rows, n),
            args=tuple(_slice_rows(a, n, rows) for a in self.args),
            is_tuple=self.is_tuple,
            baselines=baselines,
        )

    def expanded_baselines(self) -> Tensors:
        """Baselines broadcast to the full shape of their inputs."""
        if self.baselines is None:
            return tuple(torch.zeros_like(x) for x in self.inputs)
        return tuple(b.expand_as(x) for b, x in zip(self.baselines, self.inputs))

    def restore(self, values: Iterable[Tensor]) -> TensorOrTensors:
        """``values`` in the user's form: a tuple if the inputs were a tuple, else a tensor."""
        values = tuple(values)
        return values if self.is_tuple else values[0]


def normalize_baselines(
    baselines: BaselineType, inputs: Tensors, name: str = "baselines"
) -> Tensors:
    """One baseline tensor per input, each broadcastable to the input's full shape.

    Accepted forms: ``None`` (zeros), a number, a tensor of the input's shape or of its shape
    with batch dimension 1, a tensor of the input's shape without the batch dimension, or a
    tuple of these, one per input.
    """
    if baselines is None:
        return tuple(torch.zeros((1,) * x.dim(), dtype=x.dtype, device=x.device) for x in inputs)
    items = baselines if isinstance(baselines, tuple | list) else (baselines,)
    if len(items) != len(inputs):
        raise ArgumentError(
            f"{name} must give one baseline per input: got {len(items)} for {len(inputs)} inputs"
        )
    return tuple(_one_baseline(b, x, f"{name}[{i}]") for i, (b, x) in enumerate(zip(items, inputs)))


def replaced_dtype(x: Tensor, baseline: Tensor) -> torch.dtype:
    """The dtype of ``x`` with some entries replaced by ``baseline``.

    Floating-point inputs keep their dtype; integer or boolean inputs stay so (token ids stay
    ids) unless the baseline is floating-point, which makes the perturbed inputs floats, as in
    Captum (``torch.where`` promotes them).
    """
    if x.is_floating_point() or not baseline.is_floating_point():
        return x.dtype
    return baseline.dtype


def _one_baseline(b: Any, x: Tensor, name: str) -> Tensor:
    if not isinstance(b, int | float | Tensor):
        raise TypeError(f"{name} must be a number or a tensor, got {type(b).__name__}")
    if not isinstance(b, Tensor):
        # an int (or bool) keeps an integer input's dtype; a float makes it float
        dtype = x.dtype
        if isinstance(b, float) and not x.is_floating_point():
            dtype = torch.get_default_dtype()
        elif isinstance(b, bool) and x.is_floating_point():
            b = float(b)
        return torch.full((1,) * x.dim(), b, dtype=dtype, device=x.device)
    b = b.to(device=x.device)
    if b.dim() == 0:
        return b.reshape((1,) * x.dim()).to(replaced_dtype(x, b))
    if b.dim() == x.dim() - 1 and b.shape == x.shape[1:]:
        b = b.unsqueeze(0)
    if b.dim() != x.dim() or b.shape[0] not in (1, x.shape[0]):
        raise ArgumentError(
            f"{name} has shape {tuple(b.shape)}, which does not match the input's shape "
            f"{tuple(x.shape)} (use the same shape, or batch dimension 1)"
        )
    try:
        torch.broadcast_shapes(b.shape, x.shape)
    except RuntimeError:
        raise ArgumentError(
            f"{name} has shape {tuple(b.shape)}, which does not broadcast to the input's shape "
            f"{tuple(x.shape)}"
        ) from None
    return b


def build_call(
    inputs: Any,
    target: Any = None,
    additional_forward_args: Any = None,
    baselines: BaselineType = None,
    *,
    use_baselines: bool = False,
    require_float: bool = False,
    sparse: bool = False,
) -> Call:
    """Validate the user's arguments and put them in normal form.

    Args:
        inputs: a tensor or a tuple of tensors sharing their first (batch) dimension.
        target: any of the target forms accepted by :func:`normalize_target`.
        additional_forward_args: extra model arguments (see :func:`format_args`).
        baselines: reference values (see :func:`normalize_baselines`).
        use_baselines: whether the method takes baselines (otherwise they are not stored).
        require_float: raise a ``TypeError`` for integer inputs (gradient methods).
        sparse: allow inputs whose first dimension is not the batch's (see
            :func:`batch_size_of`).
    """
    is_tuple = isinstance(inputs, tuple | list)
    tensors = as_tensors(inputs)
    n = batch_size_of(tensors, sparse=sparse)
    if require_float:
        check_float(tensors)
    norm_baselines = normalize_baselines(baselines, tensors) if use_baselines else None
    return Call(
        inputs=tensors,
        target=normalize_target(target, n),
        args=format_args(additional_forward_args),
        is_tuple=is_tuple,
        baselines=norm_baselines,
    )


def normalize_distribution(baselines: Any, inputs: Tensors, name: str = "baselines") -> Tensors:
    """A distribution of baselines: one ``(B, *input.shape[1:])`` tensor per input.

    ``baselines`` may be a number, a tensor (one baseline without the batch dimension, or B of
    them), a tuple of these, or a callable returning them (called with the inputs when it takes
    an argument, else bare).
    """
    if callable(baselines) and not isinstance(baselines, Tensor):
        try:
            n_params = len(inspect.signature(baselines).parameters)
        except (TypeError, ValueError):
            n_params = 1
        baselines = baselines(inputs if len(inputs) > 1 else inputs[0]) if n_params else baselines()
    if baselines is None:
        raise ArgumentError(f"{name} are required: give a tensor of reference examples")
    items = baselines if isinstance(baselines, tuple | list) else (baselines,)
    if len(items) != len(inputs):
        raise ArgumentError(
            f"{name} must give one baseline tensor per input: got {len(items)} for {len(inputs)}"
        )
    out = []
    for i, (b, x) in enumerate(zip(items, inputs)):
        if isinstance(b, bool) or not isinstance(b, int | float | Tensor):
            raise TypeError(f"{name}[{i}] must be a number or a tensor, got {type(b).__name__}")
        if not isinstance(b, Tensor):
            b = torch.full((1, *x.shape[1:]), float(b), dtype=x.dtype, device=x.device)
        b = b.to(device=x.device)
        if b.shape == x.shape[1:]:
            b = b.unsqueeze(0)
        if b.dim() != x.dim() or b.shape[1:] != x.shape[1:]:
            raise ArgumentError(
                f"{name}[{i}] has shape {tuple(b.shape)}: a distribution of baselines needs "
                f"shape (B, {', '.join(str(d) for d in x.shape[1:])})"
            )
        out.append(b.to(x.dtype) if x.is_floating_point() else b)
    if len({b.shape[0] for b in out}) > 1:
        raise ArgumentError(f"every tensor in {name} needs the same number of baselines (dim 0)")
    return tuple(out)
