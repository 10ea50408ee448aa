"""Auto-PGD (Croce and Hein, 2020, https://arxiv.org/abs/2003.01690): PGD with momentum and
a step size that halves at checkpoints where the attack stops making progress."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import Call, Tensors
from perspicio._core.sites import Objective
from perspicio._core.validate import ArgumentError
from perspicio.robust.perturbation import LossAttack, check_number, check_steps
from perspicio.robust.steps import Masks, masked, pick, rows


def checkpoints(step_num: int) -> list[int]:
    """The iterations where the step size may halve: ``ceil(p_j * step_num)`` with
    ``p_0 = 0``, ``p_1 = 0.22`` and ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    # the tolerance keeps float noise (0.22 + 0.19 = 0.41000000000000003) out of the ceiling
    marks = {math.ceil(q * step_num - 1e-9) for q in p}
    return sorted(w for w in marks if w < step_num)


class APGD(LossAttack):
    """Auto-PGD: projected gradient ascent on the loss with momentum 1 - ``alpha`` and an
    automatic step-size schedule; returns, for each example, the point of highest loss seen.

    The step starts at ``2 * radius``. At each checkpoint ``w_j`` (see :func:`checkpoints`),
    per example, the step halves and the iterate restarts from the best point when fewer than
    ``rho`` of the steps since ``w_{j-1}`` raised the loss, or when neither the step nor the
    best loss changed since ``w_{j-1}``. Linf steps follow the gradient's sign, L2 steps its
    direction. Unlike PGD there is no step size to tune.

    Croce and Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020.

    The constructor's arguments are those of :class:`~perspicio.robust.perturbation.LossAttack`;
    ``loss_func`` must give one loss per example (``(N,)``).

    Example:
        >>> import torch
        >>> from perspicio.robust import APGD
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softmax(dim=1))
        >>> x = torch.rand(4, 3)
        >>> adv = APGD(model, lower_bound=0, upper_bound=1).perturb(x, 0.1, 20, target=0)
        >>> bool(((adv - x).abs() <= 0.1 + 1e-6).all())
        True
    """

    def perturb(  # type: ignore[override]
        self,
        inputs: Any,
        radius: float,
        step_num: int,
        target: Any,
        additional_forward_args: Any = None,
        targeted: bool = False,
        random_start: bool = False,
        norm: str = "Linf",
        mask: Any = None,
        rho: float = 0.75,
        alpha: float = 0.75,
    ) -> Any:
        """The highest-loss point found for each example, in the form of ``inputs``.

        Args:
            inputs: a tensor or a tuple of tensors sharing the batch dimension.
            radius: the radius of the ball around the inputs, at least 0.
            step_num: the number of gradient steps, at least 1.
            target: the true labels (untargeted) or the wanted labels (targeted).
            additional_forward_args: extra model arguments, not perturbed.
            targeted: lower the loss of ``target`` instead of raising it.
            random_start: start from a uniform random point of the ball.
            norm: ``"Linf"`` or ``"L2"``.
            mask: one tensor per input, broadcastable to it, multiplying every step.
            rho: the fraction of steps since the last checkpoint that must raise the loss.
            alpha: the weight of the new step (``1 - alpha`` is the momentum).
        """
        check_steps(radius, None, step_num, norm)
        for value, name in ((rho, "rho"), (alpha, "alpha")):
            check_number(value, name)
            if value > 1:
                raise ArgumentError(f"{name} must be in [0, 1], got {value}")
        call, objective, masks = self._setup(inputs, target, additional_forward_args, mask)
        x0, start = self._start(call, masks, radius, norm, random_start)
        run = _Run(self, call, objective, x0, masks, radius, norm, -1.0 if targeted else 1.0)
        # the first point must lie in the feasible set, or the momentum carries the jump into it
        return call.restore(run.ascend(run.project(start), step_num, rho, alpha))


class _Run:
    """The state of one APGD call (per-example step sizes, best points, checkpoint counts)."""

    def __init__(
        self,
        attack: APGD,
        call: Call,
        objective: Objective,
        x0: Tensors,
        masks: Masks,
        radius: float,
        norm: str,
        sign: float,
    ) -> None:
        self.attack, self.call, self.objective = attack, call, objective
        self.x0, self.masks, self.radius, self.norm, self.sign = x0, masks, radius, norm, sign

    def value_and_grad(self, xs: Tensors) -> tuple[Tensor, Tensors]:
        """The per-example objective (the loss, negated when targeted) and its gradient."""
        grads, loss = self.attack._loss.at(self.objective, self.call, xs)
        if loss.dim() != 1 or loss.shape[0] != self.call.batch_size:
            raise ArgumentError(
                f"APGD needs one loss per example (shape ({self.call.batch_size},)), got shape "
                f"{tuple(loss.shape)}: use a loss_func with reduction='none'"
            )
        return self.sign * loss, tuple(self.sign * g for g in grads)

    def project(self, xs: Tensors) -> Tensors:
        return self.attack._project(self.x0, xs, self.radius, self.norm)

    def step(self, xs: Tensors, grads: Tensors, eta: Tensor) -> Tensors:
        """``project(x + eta * direction(grad))``, masked."""
        if self.norm == "Linf":
            dirs = tuple(g.sign() for g in grads)
        else:
            gs = tuple(masked(g, m) for g, m in zip(grads, self.masks))
            total = sum(g.flatten(1).pow(2).sum(1) for g in gs)
            scale = 1 / torch.as_tensor(total).sqrt().clamp_min(1e-12)
            dirs = tuple(g * rows(scale, g) for g in gs)
        return self.project(
            tuple(x + masked(rows(eta, x) * d, m) for x, d, m in zip(xs, dirs, self.masks))
        )

    def ascend(self, start: Tensors, step_num: int, rho: float, alpha: float) -> Tensors:
        n = self.call.batch_size
        eta = torch.full((n,), 2.0 * self.radius, dtype=start[0].dtype, device=start[0].device)
        f, g = self.value_and_grad(start)
        best_x, best_f, best_g = start, f, g
        x_prev, x = start, self.step(start, g, eta)
        marks = checkpoints(step_num)
        last_mark, last_best = 0, best_f.clone()
        reduced_last = torch.zeros(n, dtype=torch.bool, device=eta.device)
        raised = torch.zeros(n, device=eta.device)
        for k in range(1, step_num):
            f_new, g = self.value_and_grad(x)
            raised += (f_new > f).to(raised.dtype)
            f = f_new
            better = f > best_f
            best_x, best_g = pick(better, x, best_x), pick(better, g, best_g)
            best_f = torch.where(better, f, best_f)
            if k in marks:
                stalled = (~reduced_last) & (best_f <= last_best)
                reduce = (raised < rho * (k - last_mark)) | stalled
                eta = torch.where(reduce, eta / 2, eta)
                # a restart continues from the best point, without momentum
                x, x_prev = pick(reduce, best_x, x), pick(reduce, best_x, x_prev)
                g, f = pick(reduce, best_g, g), torch.where(reduce, best_f, f)
                last_mark, last_best, reduced_last = k, best_f.clone(), reduce
                raised.zero_()
            z = self.step(x, g, eta)
            moved = tuple(
                xk + alpha * (zk - xk) + (1 - alpha) * (xk - xp) for xk, zk, xp in zip(x, z, x_prev)
            )
            x_prev, x = x, self.project(moved)
        f, _ = self.value_and_grad(x)
        return pick(f > best_f, x, best_x)
