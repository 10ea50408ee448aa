"""Fast Gradient Sign Method (Goodfellow et al., 2015, https://arxiv.org/abs/1412.6572)."""

from __future__ import annotations

from typing import Any

from perspicio.robust.perturbation import LossAttack, check_number
from perspicio.robust.steps import sign_step


class FGSM(LossAttack):
    """Fast Gradient Sign Method: one step of size ``epsilon`` along the sign of the gradient.

    Untargeted, ``x' = x + epsilon * sign(grad L(x, target))`` (``target`` is the true label);
    targeted, ``x' = x - epsilon * sign(grad L(x, target))`` (``target`` is the wanted label).
    Elements whose gradient is at most ``zero_thresh`` in magnitude do not move; the result is
    clamped by ``bound`` (into ``[lower_bound, upper_bound]`` unless replaced).

    Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015.

    The constructor's arguments are those of :class:`~perspicio.robust.perturbation.LossAttack`.

    Example:
        >>> import torch
        >>> from perspicio.robust import FGSM
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softmax(dim=1))
        >>> x = torch.zeros(4, 3)
        >>> adv = FGSM(model, lower_bound=-0.05).perturb(x, epsilon=0.1, target=0)
        >>> bool(((adv - x).abs() <= 0.1 + 1e-7).all()), bool((adv >= -0.05).all())
        (True, True)
    """

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
        call, objective, masks = self._setup(inputs, target, additional_forward_args, mask)
        grads, _ = self._loss.at(objective, call, call.inputs)
        stepped = sign_step(call.inputs, grads, epsilon, targeted, masks, self.zero_thresh)
        return call.restore(self.bound(x) for x in stepped)
