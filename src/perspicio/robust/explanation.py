"""Attacks on explanations: small input changes that keep the prediction but move the
saliency map (Ghorbani, Abid and Zou, "Interpretation of Neural Networks is Fragile",
AAAI 2019, https://arxiv.org/abs/1710.10547).

The attack here is their top-k attack on gradient saliency (``|d score / d x|``): sign steps
that lower the share of saliency on the originally most salient ``k`` features, inside an
L-infinity ball, keeping the model's class. Success is measured by :func:`topk_intersection`.
The step needs second derivatives of the model: with piecewise-linear activations (ReLU) they
vanish and the attack does not move; use a smooth surrogate (softplus), as the paper does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import Call, Tensors
from perspicio._core.forward import forward_call
from perspicio._core.hooks import grad
from perspicio._core.sites import InputSite
from perspicio._core.validate import ArgumentError
from perspicio.robust.perturbation import BoundedAttack, check_count, check_number, check_steps
from perspicio.robust.steps import pick, sign_step


def _flat(values: Tensor | Tensors) -> Tensor:
    """``(N, F)``: every tensor of an attribution flattened and concatenated per example."""
    parts = (values,) if isinstance(values, Tensor) else values
    return torch.cat([p.flatten(1) for p in parts], 1)


def topk_mask(values: Tensor | Tensors, k: int) -> Tensor:
    """``(N, F)`` booleans marking each example's ``k`` largest ``|values|``."""
    flat = _flat(values).abs()
    if not 1 <= k <= flat.shape[1]:
        raise ArgumentError(f"k must be between 1 and the {flat.shape[1]} features, got {k}")
    idx = flat.topk(k, dim=1).indices
    return torch.zeros_like(flat, dtype=torch.bool).scatter(1, idx, True)


def topk_intersection(a: Tensor | Tensors, b: Tensor | Tensors, k: int) -> Tensor:
    """The share of the top-``k`` features (by magnitude) of ``a`` that are also top-``k`` in
    ``b``, per example, in [0, 1] (a tensor or a tuple of tensors; dim 0 is the batch)."""
    return (topk_mask(a, k) & topk_mask(b, k)).sum(1) / k


class AttributionAttack(BoundedAttack):
    """Moves the gradient saliency map of ``target`` away from its top ``k`` features while
    keeping the predicted class, within an L-infinity ball: the top-k attack of Ghorbani et al.

    Each step is ``x - step_size * sign(grad D(x))``, with ``D`` the share of saliency on the
    original top-``k`` features, projected on the ball and the bounds. Per example, the result
    is the iterate with the smallest top-``k`` intersection whose predicted class (arg-max of a
    ``(N, C)`` output) is unchanged; with ``threshold`` it is the first iterate whose
    intersection is at most ``threshold`` (the smallest change along the path that moves the
    map that far), the inputs themselves if no step keeps the class.

    Args:
        forward_func: the model (smooth activations: see the module notes).
        lower_bound: the smallest value an input element may take.
        upper_bound: the largest value an input element may take.

    Example:
        >>> import torch
        >>> from perspicio.robust import AttributionAttack
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(),
        ...                             torch.nn.Linear(16, 3))
        >>> x = torch.randn(4, 8)
        >>> adv = AttributionAttack(model).perturb(x, 0.2, 0.02, 20, target=0, k=3)
        >>> bool(((adv - x).abs() <= 0.2 + 1e-6).all())
        True
    """

    def perturb(  # type: ignore[override]
        self,
        inputs: Any,
        radius: float,
        step_size: float,
        step_num: int,
        target: Any,
        k: int = 10,
        additional_forward_args: Any = None,
        mask: Any = None,
        threshold: float | None = None,
    ) -> Any:
        """The perturbed inputs, in the form of ``inputs``.

        Args:
            inputs: a tensor or a tuple of tensors sharing the batch dimension.
            radius: the L-infinity radius of the change, at least 0.
            step_size: the size of each sign step, at least 0.
            step_num: the number of steps, at least 1.
            target: whose saliency is attacked (any target form).
            k: how many top features define the map.
            additional_forward_args: extra model arguments, not perturbed.
            mask: one tensor per input, broadcastable to it, multiplying every step.
            threshold: stop moving an example once its intersection is at most this.
        """
        check_steps(radius, step_size, step_num)
        check_count(k, "k")
        if threshold is not None:
            check_number(threshold, "threshold")
        call, masks = self._call(inputs, target, additional_forward_args, mask)
        x0, xs = self._start(call, masks, radius, "Linf", False)
        state = _Saliency(self.forward_func, call)
        state.evaluate(x0)
        top = topk_mask(state.seen["saliency"], k)
        label = state.seen["label"]
        best, best_score = x0, torch.ones(call.batch_size, device=top.device)
        done = torch.zeros(call.batch_size, dtype=torch.bool, device=top.device)
        for i in range(step_num + 1):
            if i > 0:  # measure the point reached by the last step
                state.evaluate(xs)
            score = (topk_mask(state.seen["saliency"], k) & top).sum(1) / k
            keep = (state.seen["label"] == label) & (score < best_score) & ~done
            best = pick(keep, xs, best)
            best_score = torch.where(keep, score, best_score)
            if threshold is not None:
                done |= keep & (score <= threshold)
            if i == step_num:
                break
            grads = state.share_grads(xs, top)
            # a targeted sign step: down the gradient of the share (no element is held still)
            stepped = sign_step(xs, grads, step_size, True, masks, zero_thresh=0.0)
            xs = self._project(x0, stepped, radius, "Linf")
        return call.restore(best)


class _Saliency:
    """Gradient saliency of the call's target, its share on a feature set, and the class."""

    def __init__(self, forward_func: Callable[..., Any], call: Call) -> None:
        self.forward_func, self.call = forward_func, call
        self.seen: dict[str, Tensor] = {}

    def _score(self, call: Call, xs: Tensors) -> Tensor:
        """The target score per example; records the predicted class."""
        out = forward_call(self.forward_func, call, xs)
        if not isinstance(out, Tensor) or out.dim() != 2:
            raise ArgumentError(
                f"AttributionAttack needs a model output of shape (N, C), got "
                f"{tuple(getattr(out, 'shape', ()))}"
            )
        self.seen["label"] = out.detach().argmax(1)
        return call.target.select(out)

    def evaluate(self, xs: Tensors) -> None:
        """Record the saliency and the class at ``xs``."""
        grads, _ = InputSite().grads(self._score, self.call, at=xs)
        self.seen["saliency"] = _flat(tuple(g.abs() for g in grads))

    def share_grads(self, xs: Tensors, top: Tensor) -> Tensors:
        """Gradients w.r.t. the inputs of the saliency share on ``top``, per example."""

        def share(call: Call, ys: Tensors) -> Tensor:
            # the saliency keeps its graph, so that its share can be differentiated again
            sal = _flat(
                tuple(g.abs() for g in grad(self._score(call, ys), ys, {"create_graph": True}))
            )
            return (sal * top).sum(1) / sal.sum(1).clamp_min(1e-12)

        grads, _ = InputSite().grads(share, self.call, at=xs)
        return grads
