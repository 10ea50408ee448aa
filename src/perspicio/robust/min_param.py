"""The smallest value of an attack's parameter that makes the model wrong."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from perspicio._core.chunks import grouped
from perspicio._core.validate import ArgumentError
from perspicio.robust.batched import check_perturbations_per_eval, run_group
from perspicio.robust.perturbation import check_count, check_forward_func, check_number

MODES = ("linear", "binary")


def default_correct_fn(model_out: Tensor, target: Any) -> bool:
    """Whether every example's arg-max class is its target (``model_out`` of shape (N, C))."""
    if not isinstance(model_out, Tensor) or model_out.dim() != 2:
        raise ArgumentError(
            "the default correct_fn needs a 2-D model output (N, C); give a correct_fn for "
            f"other outputs (got {type(model_out).__name__} of shape "
            f"{tuple(getattr(model_out, 'shape', ()))})"
        )
    wanted = target if isinstance(target, Tensor) else torch.tensor(target)
    return bool((model_out.argmax(1) == wanted.to(model_out.device)).all())


def param_grid(arg_min: float, arg_max: float, arg_step: float) -> Iterator[float]:
    """``arg_min, arg_min + arg_step, ...`` below ``arg_max`` (summed step by step, as Captum)."""
    value = arg_min
    while value < arg_max:
        yield value
        value += arg_step


class MinParamPerturbation:
    """Search the smallest attack parameter (a noise level, an angle, a radius) that makes
    the model's prediction incorrect.

    The attack is called as ``attack(inputs, **attack_kwargs, **{arg_name: value})`` for
    values on the grid ``arg_min, arg_min + arg_step, ...`` below ``arg_max``: every value in
    order (``mode="linear"``), or a bisection of the grid (``mode="binary"``, which assumes the
    attack succeeds for every value above the smallest successful one). ``correct_fn`` decides
    whether the model is still right; by default, whether every example's arg-max is its
    target (so a batch fails as soon as one example does).

    Args:
        forward_func: the model, called as ``forward_func(model_input, *extra_args)``.
        attack: a :class:`Perturbation` or any callable taking ``arg_name``.
        arg_name: the keyword of the searched parameter.
        arg_min: the smallest value tried.
        arg_max: the bound of the grid (not tried).
        arg_step: the grid step (positive, smaller than ``arg_max - arg_min``).
        mode: ``"linear"`` or ``"binary"``.
        num_attempts: tries per value (for random attacks); one failure is enough.
        preproc_fn: applied to the inputs before the model.
        apply_before_preproc: attack the raw inputs (``True``) or the preprocessed ones.
        correct_fn: ``correct_fn(model_out, **kwargs) -> bool`` (``target`` is passed when
            given, then ``correct_fn_kwargs``).

    Example:
        >>> import torch
        >>> from perspicio.robust import MinParamPerturbation
        >>> model = torch.nn.Linear(2, 2, bias=False)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.eye(2))
        >>> def shift(x, delta):
        ...     return x + torch.tensor([0.0, delta])
        >>> search = MinParamPerturbation(model, shift, "delta", 0.0, 2.0, 0.1, mode="binary")
        >>> _, delta = search.evaluate(torch.tensor([[1.0, 0.0]]), target=0)
        >>> round(delta, 2)
        1.1
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        attack: Callable[..., Any],
        arg_name: str,
        arg_min: int | float,
        arg_max: int | float,
        arg_step: int | float,
        mode: str = "linear",
        num_attempts: int = 1,
        preproc_fn: Callable[..., Any] | None = None,
        apply_before_preproc: bool = False,
        correct_fn: Callable[..., Any] | None = None,
    ) -> None:
        check_forward_func(forward_func)
        if not callable(attack):
            raise TypeError(f"attack must be callable, got {type(attack).__name__}")
        if not isinstance(arg_name, str):
            raise TypeError(f"arg_name must be a str, got {type(arg_name).__name__}")
        check_number(arg_min, "arg_min", minimum=None)
        check_number(arg_max, "arg_max", minimum=None)
        check_number(arg_step, "arg_step", strict=True)
        if not arg_max > arg_min + arg_step:
            raise ArgumentError(
                f"arg_max ({arg_max}) must exceed arg_min + arg_step ({arg_min} + {arg_step})"
            )
        if not isinstance(mode, str) or mode.lower() not in MODES:
            raise ArgumentError(f"mode must be one of {MODES}, got {mode!r}")
        check_count(num_attempts, "num_attempts")
        self.forward_func = forward_func
        self.attack = attack
        self.arg_name = arg_name
        self.arg_min, self.arg_max, self.arg_step = arg_min, arg_max, arg_step
        self.mode = mode.lower()
        self.num_attempts = num_attempts
        self.preproc_fn = preproc_fn
        self.apply_before_preproc = apply_before_preproc
        self.correct_fn = default_correct_fn if correct_fn is None else correct_fn

    def evaluate(
        self,
        inputs: Any,
        additional_forward_args: Any = None,
        target: Any = None,
        perturbations_per_eval: int = 1,
        attack_kwargs: dict[str, Any] | None = None,
        correct_fn_kwargs: dict[str, Any] | None = None,
    ) -> tuple[Any, int | float | None]:
        """``(attacked inputs, value)`` for the smallest value found, else ``(None, None)``.

        Args:
            inputs: the batch (any form the attack and ``preproc_fn`` take).
            additional_forward_args: extra model arguments.
            target: the correct classes (needed by the default ``correct_fn``).
            perturbations_per_eval: attacked copies per forward pass (results do not depend
                on it; a linear search stops at the first group with a failure).
            attack_kwargs: further keyword arguments of the attack.
            correct_fn_kwargs: further keyword arguments of ``correct_fn``.
        """
        check_perturbations_per_eval(perturbations_per_eval)
        if target is None and self.correct_fn is default_correct_fn:
            raise ArgumentError("target is required by the default correct_fn")
        kwargs = {} if target is None else {"target": target}
        kwargs.update(correct_fn_kwargs or {})
        model_input = self.preproc_fn(inputs) if self.preproc_fn else inputs
        ctx = (inputs, model_input, dict(attack_kwargs or {}), additional_forward_args, kwargs)
        if self.mode == "linear":
            values: Iterator[float] = param_grid(self.arg_min, self.arg_max, self.arg_step)
            return self._first_failure(values, perturbations_per_eval, ctx)
        return self._bisect(perturbations_per_eval, ctx)

    def _attacked(self, value: float, ctx: tuple) -> tuple[Any, Any]:
        """``(model input, attacked input)`` for one attempt at ``value``."""
        inputs, model_input, attack_kwargs = ctx[:3]
        kwargs = {**attack_kwargs, self.arg_name: value}
        if self.apply_before_preproc:
            attacked = self.attack(inputs, **kwargs)
            return (self.preproc_fn(attacked) if self.preproc_fn else attacked), attacked
        attacked = self.attack(model_input, **kwargs)
        return attacked, attacked

    def _first_failure(
        self, values: Iterator[float], per_eval: int, ctx: tuple
    ) -> tuple[Any, float | None]:
        """The first attempt, in order, at which the model is wrong."""
        args, kwargs = ctx[3], ctx[4]
        attempts = ((v, *self._attacked(v, ctx)) for v in values for _ in range(self.num_attempts))
        for group in grouped(attempts, per_eval):
            with torch.no_grad():
                outs = run_group(self.forward_func, [g[1] for g in group], args)
            for (value, _, attacked), out in zip(group, outs):
                if not self.correct_fn(out, **kwargs):
                    return attacked, value
        return None, None

    def _bisect(self, per_eval: int, ctx: tuple) -> tuple[Any, float | None]:
        """Bisection on the grid ``arg_min + k * arg_step`` (``arg_max`` excluded)."""
        low, high = self.arg_min, self.arg_max
        best: tuple[Any, float | None] = (None, None)
        while high > low:
            k = ((high - low) // self.arg_step) // 2
            if k == 0 and low + self.arg_step < high:
                k = 1
            mid = low + k * self.arg_step
            attacked, value = self._first_failure(iter([mid]), per_eval, ctx)
            if value is not None:
                high = mid
                if best[1] is None or best[1] > mid:
                    best = (attacked, mid)
            if math.isclose(low, mid):
                break
            if value is None:
                low = mid
        return best
