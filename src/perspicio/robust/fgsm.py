"""Fast Gradient Sign Method (Goodfellow et al., 2015, https://arxiv.org/abs/1412.6572)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import Tensors
from perspicio.robust.perturbation import (
    LossGradient,
    Perturbation,
    check_bounds,
    check_number,
    clamp_to,
    format_masks,
    masked,
)


def sign_step(
    xs: Tensors,
    grads: Tensors,
    step: float,
    targeted: bool,
    masks: tuple[Tensor | None, ...],
    zero_thresh: float,
) -> Tensors:
    """``x ± step * sign(grad)`` (minus when targeted), only where ``|grad| > zero_thresh``."""
    sign = -1.0 if targeted else 1.0
    return tuple(
        torch.where(g.abs() > zero_thresh, x + masked(sign * step * torch.sign(g), m), x)
        for x, g, m in zip(xs, grads, masks)
    )


class FGSM(Perturbation):
    """Fast Gradient Sign Method: one step of size ``epsilon`` along the sign of the gradient.

    Untargeted, ``x' = x + epsilon * sign(grad L(x, target))`` (``target`` is the true label);
    targeted, ``x' = x - epsilon * sign(grad L(x, target))`` (``target`` is the wanted label).
    Elements whose gradient is at most ``zero_thresh`` in magnitude do not move; the result is
    clamped by ``bound`` (into ``[lower_bound, upper_bound]`` unless replaced).

    Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015.

    Args:
        forward_func: the model, or any function of the inputs.
        loss_func: ``loss_func(outputs, target) -> loss``; by default ``-log`` of the target
            output (so the model should give probabilities).
        lower_bound: the smallest value an input element may take.
        upper_bound: the largest value an input element may take.

    Example:
        >>> import torch
        >>> from perspicio.robust import FGSM
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softmax(dim=1))
        >>> x = torch.zeros(4, 3)
        >>> adv = FGSM(model, lower_bound=-0.05).perturb(x, epsilon=0.1, target=0)
        >>> bool(((adv - x).abs() <= 0.1 + 1e-7).all()), bool((adv >= -0.05).all())
        (True, True)
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
        epsilon: float,
        target: Any,
        additional_forward_args: Any = None,
        targeted: bool = False,
        mask: Any = None,
    ) -> Any:
        """The perturbed inputs, in the form of ``inputs``.

        Args:
            inputs: a tensor or a tuple of tensors sharing the batch dimension.
            epsilon: the step size (the L-infinity size of the change), at least 0.
            target: the true labels (untargeted) or the wanted labels (targeted); passed to
                ``loss_func`` as is, or any target form for the default loss.
            additional_forward_args: extra model arguments, not perturbed.
            targeted: step towards ``target`` instead of away from it.
            mask: one tensor per input, broadcastable to it, multiplying the step (zeros keep
                elements fixed).
        """
        check_number(epsilon, "epsilon")
        call, objective = self._loss.setup(inputs, target, additional_forward_args)
        masks = format_masks(mask, call.inputs)
        grads, _ = self._loss.at(objective, call, call.inputs)
        stepped = sign_step(call.inputs, grads, epsilon, targeted, masks, self.zero_thresh)
        return call.restore(self.bound(x) for x in stepped)
