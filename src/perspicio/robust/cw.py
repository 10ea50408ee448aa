"""The Carlini-Wagner L2 attack (Carlini and Wagner, 2017, https://arxiv.org/abs/1608.04644)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import Call, Tensors
from perspicio._core.forward import forward_call
from perspicio._core.sites import InputSite
from perspicio._core.validate import ArgumentError
from perspicio.robust.perturbation import BoundedAttack, check_count, check_number
from perspicio.robust.steps import Masks, pick


class CarliniWagnerL2(BoundedAttack):
    """The smallest L2 change, found by optimisation, that changes the model's class.

    Minimises ``||x' - x||_2^2 + c * max(Z_t - max_{j != t} Z_j + confidence, 0)`` (untargeted;
    targeted swaps the two logit terms) with Adam, for each example, over a binary search on
    ``c`` that starts at ``initial_const`` (``c`` grows tenfold until an adversarial example is
    found, then bisects). With finite bounds the box is enforced by the change of variables
    ``x' = lower + (upper - lower) * (tanh(w) + 1) / 2``. The model must give logits ``(N, C)``.
    Examples for which no adversarial point was found are returned unchanged.

    Carlini and Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017.

    Args:
        forward_func: the model, giving logits of shape ``(N, C)``.
        lower_bound: the smallest value an input element may take.
        upper_bound: the largest value an input element may take.

    Example:
        >>> import torch
        >>> from perspicio.robust import CarliniWagnerL2
        >>> model = torch.nn.Linear(2, 2, bias=False)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.eye(2))
        >>> x = torch.tensor([[1.0, 0.0]])
        >>> adv = CarliniWagnerL2(model).perturb(x, target=0, step_num=200, step_size=0.05)
        >>> model(adv).argmax(1).item(), round((adv - x).norm().item(), 1)  # 1/sqrt(2) ideally
        (1, 0.7)
    """

    def perturb(  # type: ignore[override]
        self,
        inputs: Any,
        target: Any,
        additional_forward_args: Any = None,
        targeted: bool = False,
        confidence: float = 0.0,
        initial_const: float = 1e-3,
        binary_search_steps: int = 5,
        step_num: int = 100,
        step_size: float = 1e-2,
        mask: Any = None,
    ) -> Any:
        """The smallest adversarial point found for each example, in the form of ``inputs``.

        Args:
            inputs: a tensor or a tuple of tensors sharing the batch dimension.
            target: the true classes (untargeted) or the wanted classes (targeted).
            additional_forward_args: extra model arguments, not perturbed.
            targeted: reach ``target`` instead of leaving it.
            confidence: the logit margin required (``kappa`` in the paper), at least 0.
            initial_const: the first trade-off constant ``c``, positive.
            binary_search_steps: rounds of the search on ``c``, at least 1.
            step_num: Adam steps per round, at least 1.
            step_size: the Adam learning rate, positive.
            mask: one tensor per input, broadcastable to it: zeros keep elements fixed.
        """
        check_number(confidence, "confidence")
        check_number(initial_const, "initial_const", strict=True)
        check_count(binary_search_steps, "binary_search_steps")
        check_count(step_num, "step_num")
        check_number(step_size, "step_size", strict=True)
        call, masks = self._call(inputs, target, additional_forward_args, mask)
        if call.target.is_none:
            raise ArgumentError("target is required: the class to leave (or to reach)")
        search = _Search(self, call, masks, targeted, confidence)
        n = call.batch_size
        const = torch.full((n,), float(initial_const), device=call.inputs[0].device)
        low, high = torch.zeros_like(const), torch.full_like(const, 1e10)
        for _ in range(binary_search_steps):
            found = search.round(const, step_num, step_size)
            high = torch.where(found, torch.minimum(high, const), high)
            low = torch.where(found, low, torch.maximum(low, const))
            const = torch.where(high < 1e10, (low + high) / 2, const * 10)
        return call.restore(search.best)


class _Search:
    """One attack call: the variables, the loss, and the best adversarial points so far."""

    def __init__(
        self,
        attack: CarliniWagnerL2,
        call: Call,
        masks: Masks,
        targeted: bool,
        confidence: float,
    ) -> None:
        self.attack, self.call, self.masks = attack, call, masks
        self.targeted, self.confidence = targeted, confidence
        self.x0 = tuple(x.detach() for x in call.inputs)
        self.best: Tensors = self.x0
        n = call.batch_size
        self.best_dist = torch.full((n,), float("inf"), device=self.x0[0].device)
        self.lo, self.hi = attack.lower_bound, attack.upper_bound
        self.boxed = self.lo > float("-inf") and self.hi < float("inf")

    def to_x(self, ws: Tensors) -> Tensors:
        """The inputs for the variables ``ws`` (inside the box when it is finite)."""
        xs = ws
        if self.boxed:
            xs = tuple(self.lo + (self.hi - self.lo) * (torch.tanh(w) + 1) / 2 for w in ws)
        else:
            xs = tuple(w.clamp(self.lo, self.hi) for w in ws)
        return tuple(
            x if m is None else x0 + m * (x - x0) for x, x0, m in zip(xs, self.x0, self.masks)
        )

    def start(self) -> Tensors:
        if not self.boxed:
            return self.x0
        span = self.hi - self.lo
        return tuple(
            torch.atanh(((x - self.lo) / span * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6)) for x in self.x0
        )

    def margins(self, out: Tensor) -> Tensor:
        """How far each example is from success, in logits (success below ``-confidence``)."""
        if not isinstance(out, Tensor) or out.dim() != 2:
            raise ArgumentError(
                f"CarliniWagnerL2 needs model logits of shape (N, C), got "
                f"{tuple(getattr(out, 'shape', ()))}"
            )
        cols = torch.arange(out.shape[1], device=out.device).expand_as(out)
        labels = self.call.target.select(cols)  # the target class of each example
        own = out.gather(1, labels[:, None])[:, 0]
        others = out.scatter(1, labels[:, None], float("-inf")).amax(1)
        return others - own if self.targeted else own - others

    def round(self, const: Tensor, step_num: int, step_size: float) -> Tensor:
        """Adam on the CW loss at constants ``const``; which examples were made adversarial."""
        seen: dict[str, Tensor] = {}

        def objective(call: Call, ws: Tensors) -> Tensor:
            xs = self.to_x(ws)
            margin = self.margins(forward_call(self.attack.forward_func, call, xs))
            dist = sum(((x - x0) ** 2).flatten(1).sum(1) for x, x0 in zip(xs, self.x0))
            seen.update(margin=margin.detach(), dist=torch.as_tensor(dist).detach())
            seen["xs"] = tuple(x.detach() for x in xs)  # type: ignore[assignment]
            return dist + const.to(margin.dtype) * (margin + self.confidence).clamp_min(0)

        ws = self.start()
        m1 = tuple(torch.zeros_like(w) for w in ws)
        m2 = tuple(torch.zeros_like(w) for w in ws)
        found = torch.zeros_like(const, dtype=torch.bool)
        for t in range(1, step_num + 1):
            grads, _ = InputSite().grads(objective, self.call, at=ws)
            self.keep(seen, found)
            m1 = tuple(0.9 * a + 0.1 * g for a, g in zip(m1, grads))
            m2 = tuple(0.999 * b + 0.001 * g * g for b, g in zip(m2, grads))
            ws = tuple(
                w - step_size * (a / (1 - 0.9**t)) / ((b / (1 - 0.999**t)).sqrt() + 1e-8)
                for w, a, b in zip(ws, m1, m2)
            )
        with torch.no_grad():
            objective(self.call, ws)
        self.keep(seen, found)
        return found

    def keep(self, seen: dict[str, Any], found: Tensor) -> None:
        """Record the points of the last evaluation that are adversarial and closer."""
        success = seen["margin"] < -self.confidence
        found |= success
        closer = success & (seen["dist"] < self.best_dist)
        self.best_dist = torch.where(closer, seen["dist"], self.best_dist)
        self.best = pick(closer, seen["xs"], self.best)
