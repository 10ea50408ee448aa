"""Projected Gradient Descent (Madry et al., 2018, https://arxiv.org/abs/1706.06083)."""

from __future__ import annotations

from typing import Any

from perspicio.robust.perturbation import LossAttack, check_steps
from perspicio.robust.steps import sign_step


class PGD(LossAttack):
    """Projected Gradient Descent: repeated sign-gradient steps, projected on a ball.

    ``x_{t+1} = bound(project(x_t ± step_size * sign(grad L(x_t, target))))``, starting from
    the inputs (or a random point of the ball), with the projection on the L-infinity or L2
    ball of ``radius`` around the inputs. As in Captum, the L2 variant also takes sign steps and
    only its projection differs.

    Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.

    The constructor's arguments are those of :class:`~perspicio.robust.perturbation.LossAttack`.

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
        check_steps(radius, step_size, step_num, norm)
        call, objective, masks = self._setup(inputs, target, additional_forward_args, mask)
        x0, xs = self._start(call, masks, radius, norm, random_start)
        for _ in range(step_num):
            grads, _ = self._loss.at(objective, call, xs)
            stepped = sign_step(xs, grads, step_size, targeted, masks, self.zero_thresh)
            xs = self._project(x0, stepped, radius, norm)
        return call.restore(xs)
