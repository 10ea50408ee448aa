"""Projected Gradient Descent (Madry et al., 2018, https://arxiv.org/abs/1706.06083)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import Tensors
from perspicio.robust.fgsm import sign_step
from perspicio.robust.perturbation import (
    LossGradient,
    Perturbation,
    check_bounds,
    check_count,
    check_norm,
    check_number,
    clamp_to,
    format_masks,
    masked,
)


def project(center: Tensor, x: Tensor, radius: float, norm: str) -> Tensor:
    """``x`` moved into the ``norm`` ball of ``radius`` around ``center`` (per example)."""
    diff = x - center
    if norm == "Linf":
        return center + diff.clamp(-radius, radius)
    # renorm rescales every example (a slice along dim 0) whose L2 norm exceeds radius
    return center + torch.renorm(diff, 2, 0, radius)


def random_point(center: Tensor, radius: float, norm: str, mask: Tensor | None) -> Tensor:
    """A point drawn uniformly from the ``norm`` ball of ``radius`` around ``center``.

    For L2 the direction is a normalised Gaussian and the radius ``radius * U ** (1 / d)``
    (``d`` elements per example), which is uniform in the ball.
    """
    if norm == "Linf":
        return center + masked(torch.rand_like(center) * 2 * radius - radius, mask)
    n = center.shape[0]
    u = torch.randn_like(center).reshape(n, -1)
    direction = u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)
    r = torch.rand(n).to(device=center.device, dtype=center.dtype) ** (1.0 / u.shape[1])
    return center + masked((radius * r[:, None] * direction).reshape(center.shape), mask)


class PGD(Perturbation):
    """Projected Gradient Descent: repeated sign-gradient steps, projected on a ball.

    ``x_{t+1} = bound(project(x_t ± step_size * sign(grad L(x_t, target))))``, starting from
    the inputs (or a random point of the ball), with the projection on the L-infinity or L2
    ball of ``radius`` around the inputs. As in Captum, the L2 variant also takes sign steps and
    only its projection differs.

    Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.

    Args:
        forward_func: the model, or any function of the inputs.
        loss_func: ``loss_func(outputs, target) -> loss``; by default ``-log`` of the target
            output (so the model should give probabilities).
        lower_bound: the smallest value an input element may take.
        upper_bound: the largest value an input element may take.

    Example:
        >>> import torch
        >>> from perspicio.robust import PGD
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softmax(dim=1))
        >>> x = torch.rand(4, 3)
        >>> adv = PGD(model, lower_bound=0, upper_bound=1).perturb(
        ...     x, radius=0.2, step_size=0.05, step_num=10, target=0, norm="L2")
        >>> bool(((adv - x).norm(dim=1) <= 0.2 + 1e-6).all())
        True
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        loss_func: Callable[..., Any] | None = None,
        lower_bound: float = float("-inf"),
        upper_bound: float = float("inf"),
    ) -> None:
        check_bounds(lower_bound, upper_bound)
        self._loss = LossGradient(forward_func, loss_func)
        self.forward_func = forward_func
        self.loss_func = loss_func
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        self.bound: Callable[[Tensor], Tensor] = clamp_to(lower_bound, upper_bound)
        self.zero_thresh = 1e-6

    def perturb(  # type: ignore[override]
        self,
        inputs: Any,
        radius: float,
        step_size: float,
        step_num: int,
        target: Any,
        additional_forward_args: Any = None,
        targeted: bool = False,
        random_start: bool = False,
        norm: str = "Linf",
        mask: Any = None,
    ) -> Any:
        """The perturbed inputs, in the form of ``inputs``.

        Args:
            inputs: a tensor or a tuple of tensors sharing the batch dimension.
            radius: the radius of the ball around the inputs, at least 0.
            step_size: the size of each sign step, at least 0.
            step_num: the number of steps, at least 1.
            target: the true labels (untargeted) or the wanted labels (targeted); passed to
                ``loss_func`` as is, or any target form for the default loss.
            additional_forward_args: extra model arguments, not perturbed.
            targeted: step towards ``target`` instead of away from it.
            random_start: start from a uniform random point of the ball.
            norm: ``"Linf"`` or ``"L2"``.
            mask: one tensor per input, broadcastable to it, multiplying every step.
        """
        check_number(radius, "radius")
        check_number(step_size, "step_size")
        check_count(step_num, "step_num")
        check_norm(norm)
        call, objective = self._loss.setup(inputs, target, additional_forward_args)
        masks = format_masks(mask, call.inputs)
        x0 = tuple(x.detach() for x in call.inputs)
        xs: Tensors = x0
        if random_start:
            xs = tuple(self.bound(random_point(x, radius, norm, m)) for x, m in zip(x0, masks))
        for _ in range(step_num):
            grads, _ = self._loss.at(objective, call, xs)
            stepped = sign_step(xs, grads, step_size, targeted, masks, self.zero_thresh)
            xs = tuple(
                self.bound(project(c, s, radius, norm)).detach() for c, s in zip(x0, stepped)
            )
        return call.restore(xs)
