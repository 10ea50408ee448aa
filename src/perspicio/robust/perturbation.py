"""The base of every attack, and what the attacks share: checks, masks, the loss, the bases.

:class:`BoundedAttack` holds what every attack on a model's inputs has (the model, the bounds,
the call with its masks, the start and the projection); :class:`LossAttack` adds the loss
gradient, for FGSM, PGD and APGD. The step geometry is in :mod:`perspicio.robust.steps`.

An attack's gradient is the gradient of a loss, not of a target score: it is taken with
:func:`~perspicio._core.sites.loss_objective` on an :class:`~perspicio._core.sites.InputSite`,
so the user's tensors, the model's parameters (no ``.grad``) and its mode are never touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import Call, Tensors, as_tensors, build_call
from perspicio._core.sites import InputSite, Objective, loss_objective
from perspicio._core.validate import ArgumentError
from perspicio.robust.steps import Masks, project, random_point

NORMS = ("Linf", "L2")


class Perturbation:
    """The base of every perturbation and attack: calling the object runs :meth:`perturb`.

    ``perturb(inputs, ...)`` returns perturbed inputs in the user's form (a tensor for a
    tensor, a tuple for a tuple), each of its input's shape.

    Example:
        >>> import torch
        >>> from perspicio.robust import Perturbation
        >>> class Shift(Perturbation):
        ...     def perturb(self, inputs, delta=1.0):
        ...         return inputs + delta
        >>> Shift()(torch.zeros(2), delta=0.5)
        tensor([0.5000, 0.5000])
    """

    def perturb(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement perturb")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.perturb(*args, **kwargs)


def check_number(value: Any, name: str, minimum: float | None = 0.0, strict: bool = False) -> None:
    """A real number (not a bool), at least ``minimum`` (above it with ``strict``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if math.isnan(value):
        raise ArgumentError(f"{name} must be a number, got nan")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        rule = "above" if strict else "at least"
        raise ArgumentError(f"{name} must be {rule} {minimum}, got {value}")


def check_count(value: Any, name: str, minimum: int = 1) -> None:
    """An int (not a bool), at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ArgumentError(f"{name} must be at least {minimum}, got {value}")


def check_bounds(lower_bound: Any, upper_bound: Any) -> None:
    """Two numbers, ``lower_bound <= upper_bound``."""
    check_number(lower_bound, "lower_bound", minimum=None)
    check_number(upper_bound, "upper_bound", minimum=None)
    if lower_bound > upper_bound:
        raise ArgumentError(
            f"lower_bound ({lower_bound}) must not exceed upper_bound ({upper_bound})"
        )


def check_norm(norm: Any) -> None:
    if norm not in NORMS:
        raise ArgumentError(f"norm must be one of {NORMS}, got {norm!r}")


def check_forward_func(forward_func: Any) -> None:
    if not callable(forward_func):
        raise TypeError(
            f"forward_func must be a callable (a model or a function), got "
            f"{type(forward_func).__name__}"
        )


def check_steps(radius: Any, step_size: Any, step_num: Any, norm: Any = "Linf") -> None:
    """The ball and the schedule of an iterative attack (``step_size=None``: it has none)."""
    check_number(radius, "radius")
    if step_size is not None:
        check_number(step_size, "step_size")
    check_count(step_num, "step_num")
    check_norm(norm)


def format_masks(mask: Any, inputs: Tensors) -> Masks:
    """One mask per input (``None``: every element may move), each broadcastable to it."""
    if mask is None:
        return (None,) * len(inputs)
    masks = as_tensors(mask, "mask")
    if len(masks) != len(inputs):
        raise ArgumentError(f"mask must give one tensor per input: {len(masks)} for {len(inputs)}")
    for i, (m, x) in enumerate(zip(masks, inputs)):
        try:
            shape = torch.broadcast_shapes(m.shape, x.shape)
        except RuntimeError:
            shape = None
        if shape != x.shape:
            raise ArgumentError(
                f"mask[{i}] has shape {tuple(m.shape)}, which does not broadcast to the "
                f"input's shape {tuple(x.shape)}"
            )
    return tuple(m.to(device=x.device) for m, x in zip(masks, inputs))


class LossGradient:
    """The gradient of an attack's loss w.r.t. the inputs.

    Without ``loss_func`` the loss is ``-log`` of the target output (the model is taken to
    give probabilities) and ``target`` takes every form of :mod:`perspicio._core.target`.
    With ``loss_func`` the loss is ``loss_func(outputs, target)``: ``target`` is passed as is.
    The loss may be one value per example or one value for the batch.
    """

    def __init__(self, forward_func: Callable[..., Any], loss_func: Callable[..., Any] | None):
        check_forward_func(forward_func)
        if loss_func is not None and not callable(loss_func):
            raise TypeError(f"loss_func must be callable or None, got {type(loss_func).__name__}")
        self.forward_func = forward_func
        self.loss_func = loss_func

    def setup(
        self, inputs: Any, target: Any, additional_forward_args: Any
    ) -> tuple[Call, Objective]:
        """The call (validated before any model evaluation) and the loss objective."""
        if self.loss_func is None:
            call = build_call(inputs, target, additional_forward_args, require_float=True)
            return call, loss_objective(self.forward_func)
        call = build_call(inputs, None, additional_forward_args, require_float=True)
        return call, loss_objective(self.forward_func, self.loss_func, target)

    @staticmethod
    def at(objective: Objective, call: Call, xs: Tensors) -> tuple[Tensors, Tensor]:
        """Gradients of the loss at ``xs`` (fed in place of the inputs), and the loss."""
        return InputSite().grads(objective, call, at=xs)


def clamp_to(lower_bound: float, upper_bound: float) -> Callable[[Tensor], Tensor]:
    """The default ``bound`` of an attack: clamp into ``[lower_bound, upper_bound]``."""

    def bound(x: Tensor) -> Tensor:
        return torch.clamp(x, min=lower_bound, max=upper_bound)

    return bound


class BoundedAttack(Perturbation):
    """An attack on the inputs of ``forward_func`` whose points stay within ``bound``.

    ``bound`` clamps into ``[lower_bound, upper_bound]`` unless replaced.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        lower_bound: float = float("-inf"),
        upper_bound: float = float("inf"),
    ) -> None:
        check_forward_func(forward_func)
        check_bounds(lower_bound, upper_bound)
        self.forward_func = forward_func
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        self.bound: Callable[[Tensor], Tensor] = clamp_to(lower_bound, upper_bound)

    @staticmethod
    def _call(
        inputs: Any, target: Any, additional_forward_args: Any, mask: Any
    ) -> tuple[Call, Masks]:
        """The call (float inputs) and one mask per input, validated before any work."""
        call = build_call(inputs, target, additional_forward_args, require_float=True)
        return call, format_masks(mask, call.inputs)

    def _start(
        self, call: Call, masks: Masks, radius: float, norm: str, random_start: bool
    ) -> tuple[Tensors, Tensors]:
        """The inputs (detached), and the first iterate: a random point of the ball around
        them with ``random_start``, else the inputs."""
        x0 = tuple(x.detach() for x in call.inputs)
        if not random_start:
            return x0, x0
        return x0, tuple(self.bound(random_point(x, radius, norm, m)) for x, m in zip(x0, masks))

    def _project(self, x0: Tensors, xs: Tensors, radius: float, norm: str) -> Tensors:
        """``xs`` projected on the ``norm`` balls of ``radius`` around ``x0``, then bounded."""
        return tuple(self.bound(project(c, x, radius, norm)).detach() for c, x in zip(x0, xs))


class LossAttack(BoundedAttack):
    """A bounded attack that follows the gradient of a loss (see :class:`LossGradient`).

    Elements whose gradient is at most ``zero_thresh`` in magnitude do not take sign steps.

    Args:
        forward_func: the model, or any function of the inputs.
        loss_func: ``loss_func(outputs, target) -> loss``; by default ``-log`` of the target
            output (so the model should give probabilities).
        lower_bound: the smallest value an input element may take.
        upper_bound: the largest value an input element may take.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        loss_func: Callable[..., Any] | None = None,
        lower_bound: float = float("-inf"),
        upper_bound: float = float("inf"),
    ) -> None:
        super().__init__(forward_func, lower_bound, upper_bound)
        self._loss = LossGradient(forward_func, loss_func)
        self.loss_func = loss_func
        self.zero_thresh = 1e-6

    def _setup(
        self, inputs: Any, target: Any, additional_forward_args: Any, mask: Any
    ) -> tuple[Call, Objective, Masks]:
        """The call, the loss objective and one mask per input, validated before any work."""
        call, objective = self._loss.setup(inputs, target, additional_forward_args)
        return call, objective, format_masks(mask, call.inputs)
