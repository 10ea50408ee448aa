"""Layer-wise relevance propagation rules, written as modified gradients.

Under LRP the backward pass carries *relevance*: a rule receives the relevance ``R_y`` of a
module's output and returns the relevance ``R_x`` of its input. Every rule here except
:class:`IdentityRule` is a *z-rule*: the module is evaluated as ``z = Σ_t ± f_t(v_t)``, a sum
of terms that each feed values ``v_t`` through the module with modified parameters, and

``R_x = Σ_t v_t ⊙ ∂z/∂v_t ᵀ (R_y / (z + ε·sign(z)))``

(``sign(0) = +1``). For the ε-rule the only term is the module itself on its input, so
``R_x = x ⊙ (∂y/∂x)ᵀ (R_y / (y + ε·sign(y)))``: the gradient × input form of Ancona et al.
(2018, https://arxiv.org/abs/1711.06104), with one extra autograd call and no second forward
pass. The forward values of the model are never changed, and modified parameters only exist
inside the rule's backward (they never touch the user's tensors).

References: Bach et al. 2015 (https://doi.org/10.1371/journal.pone.0130140); Montavon et al.
2019, "Layer-Wise Relevance Propagation: An Overview" (https://doi.org/10.1007/978-3-030-28954-6_10);
Montavon et al. 2017, deep Taylor decomposition (https://doi.org/10.1016/j.patcog.2016.11.008);
Kohlbrenner et al. 2020 (https://arxiv.org/abs/1910.09840).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.hooks import swapped
from perspicio._core.validate import ArgumentError
from perspicio.propagation import rules as _rules
from perspicio.propagation.rules import ModuleCall

Params = dict[str, Tensor | None]


def stabilize(z: Tensor, eps: float) -> Tensor:
    """``z + eps · sign(z)`` with ``sign(0) = +1``: keeps denominators away from zero."""
    return torch.where(z >= 0, z + eps, z - eps)


@dataclass(frozen=True)
class Term:
    """One term of a z-rule: ``sign · module(inputs)`` with ``params`` in place of its own.

    Attributes:
        inputs: one tensor per input of the module (see ``ModuleCall.xs``).
        params: parameters to use instead of the module's (``None`` removes one, e.g. the
            bias); ``None`` for the module's own.
        sign: ``+1`` or ``-1``.
    """

    inputs: tuple[Tensor, ...]
    params: Params | None = None
    sign: float = 1.0


def _check_number(value: Any, name: str, minimum: int = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if value < minimum:
        raise ArgumentError(f"{name} must be at least {minimum}, got {value}")
    return float(value)


def _weight(module: nn.Module) -> Tensor | None:
    w = module._parameters.get("weight")
    return None if w is None else w.detach()


def _no_bias(module: nn.Module) -> Params:
    return {"bias": None} if module._parameters.get("bias") is not None else {}


def _with_weight(module: nn.Module, fn: Any, zero_bias: bool = True) -> Params:
    """Parameters with ``fn`` applied to the weight (if any) and the bias removed."""
    params = _no_bias(module) if zero_bias else {}
    w = _weight(module)
    if w is not None:
        params["weight"] = fn(w)
    return params


class PropagationRule(_rules.PropagationRule):
    """Base class of LRP rules: the z-rule of the module itself (LRP-0 with a tiny ε).

    Subclasses change :meth:`terms` (or just :meth:`modified_parameters`). For Captum
    compatibility a subclass may instead define ``_manipulate_weights(module, inputs,
    outputs)`` and edit ``module.weight.data`` there as Captum's rules do: it is called on
    copies of the parameters, never on the user's.

    Attributes:
        STABILITY_FACTOR: the ε added (with the sign of ``z``) to every denominator.
    """

    STABILITY_FACTOR: float = 1e-9

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"

    def _manipulate_weights(self, module: nn.Module, inputs: Any, outputs: Any) -> None:
        """Captum's hook for custom rules: edit the module's parameters in place."""

    def modified_parameters(self, call: ModuleCall) -> Params | None:
        """Parameters to use instead of the module's own, or ``None`` for its own."""
        if type(self)._manipulate_weights is PropagationRule._manipulate_weights:
            return None
        m = call.module
        copies = {n: p.detach().clone() for n, p in m._parameters.items() if p is not None}
        with swapped(m, copies):
            self._manipulate_weights(m, call.xs, call.y)
            return {n: m._parameters[n] for n in copies}

    def terms(self, call: ModuleCall) -> list[Term]:
        """The terms of ``z`` (default: the module on its own inputs)."""
        return [Term(call.xs, self.modified_parameters(call))]

    def backward(self, call: ModuleCall, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        """Relevance of the module's inputs from the relevance ``grad_out`` of its output."""
        terms = self.terms(call)
        if len(terms) == 1 and terms[0].params is None and terms[0].inputs is call.xs:
            # the module itself: reuse the graph of the forward pass
            s = grad_out / stabilize(call.y, self.STABILITY_FACTOR)
            return tuple(x * g for x, g in zip(call.xs, call.plain_grads(s)))
        leaves = [tuple(v.detach().requires_grad_(True) for v in t.inputs) for t in terms]
        z = sum(t.sign * call.forward_with(lv, t.params) for t, lv in zip(terms, leaves))
        if not isinstance(z, Tensor):
            raise ArgumentError(
                f"{type(self).__name__}.terms returned no terms for "
                f"{type(call.module).__name__}: a rule needs at least one term"
            )
        s = grad_out / stabilize(z.detach(), self.STABILITY_FACTOR)
        flat = [v for lv in leaves for v in lv]
        grads = torch.autograd.grad(z, flat, s, allow_unused=True)
        relevance = [torch.zeros_like(x) for x in call.xs]
        for k, (v, g) in enumerate(zip(flat, grads)):
            if g is not None:
                relevance[k % len(call.xs)] += v.detach() * g
        return tuple(relevance)


class EpsilonRule(PropagationRule):
    """LRP-ε (Bach et al., 2015): ``R_x = x ⊙ Jᵀ (R_y / (y + ε·sign(y)))``.

    ε absorbs weak or contradictory relevance; ε → 0 gives LRP-0. The default rule of linear,
    convolution, pooling and BatchNorm layers, as in Captum. Bias terms take their share of
    relevance, so relevance is conserved only for bias-free layers.

    Args:
        epsilon: the stabiliser ε (at least 0).

    Example:
        >>> import torch
        >>> from perspicio.lrp import LRP, EpsilonRule
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2, bias=False))
        >>> model[0].rule = EpsilonRule(epsilon=1e-12)
        >>> x = torch.randn(4, 3)
        >>> attr = LRP(model).attribute(x, target=0)
        >>> torch.allclose(attr.sum(1), model(x)[:, 0].detach(), atol=1e-5)
        True
        >>> del model[0].rule
    """

    def __init__(self, epsilon: float = 1e-9) -> None:
        self.STABILITY_FACTOR = _check_number(epsilon, "epsilon")


class GammaRule(PropagationRule):
    """LRP-γ (Montavon et al., 2019): positive weights are boosted, ``w + γ·w⁺``.

    Favours positive contributions, which gives more stable explanations in lower layers.
    As in Captum the bias is kept as it is (the paper also boosts a positive bias), or
    dropped with ``set_bias_to_zero``; the stabiliser is ``STABILITY_FACTOR`` (1e-9).

    Args:
        gamma: how much positive weights are boosted (at least 0; 0 gives LRP-0).
        set_bias_to_zero: leave the bias out of ``z``.
    """

    def __init__(self, gamma: float = 0.25, set_bias_to_zero: bool = False) -> None:
        self.gamma = _check_number(gamma, "gamma")
        self.set_bias_to_zero = set_bias_to_zero

    def modified_parameters(self, call: ModuleCall) -> Params | None:
        g = self.gamma
        return _with_weight(call.module, lambda w: w + g * w.clamp(min=0), self.set_bias_to_zero)


class Alpha1_Beta0_Rule(PropagationRule):
    """LRP-α1β0 (Bach et al., 2015), the deep-Taylor z⁺ rule for non-negative inputs.

    Only positive weights propagate relevance. As in Captum, ``z`` keeps the bias unless
    ``set_bias_to_zero`` (see :class:`ZPlusRule` for the bias-free form that also handles
    negative inputs).

    Args:
        set_bias_to_zero: leave the bias out of ``z``.
    """

    def __init__(self, set_bias_to_zero: bool = False) -> None:
        self.set_bias_to_zero = set_bias_to_zero

    def modified_parameters(self, call: ModuleCall) -> Params | None:
        return _with_weight(call.module, lambda w: w.clamp(min=0), self.set_bias_to_zero)


class IdentityRule(PropagationRule):
    """Passes relevance through unchanged: ``R_x = R_y``.

    For modules whose input and output have the same shape: element-wise activations
    (ReLU, Tanh, ...), Dropout, and BatchNorm when it is not merged into a layer.
    """

    def backward(self, call: ModuleCall, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        if call.x.shape != grad_out.shape or len(call.xs) != 1:
            raise ArgumentError(
                f"IdentityRule needs a module with one input of its output's shape; "
                f"{type(call.module).__name__} maps {tuple(call.x.shape)} to "
                f"{tuple(grad_out.shape)}"
            )
        return (grad_out,)


class ZPlusRule(PropagationRule):
    """The z⁺ rule (Montavon et al., 2017): only positive contributions ``(x_i·w_ij)⁺``.

    ``z⁺ = W⁺x⁺ + W⁻x⁻`` without bias, so relevance is conserved and stays positive for a
    positive output. For non-negative inputs this is :class:`Alpha1_Beta0_Rule` without bias.

    Args:
        stabilizer: the ε added to ``z⁺``.
    """

    def __init__(self, stabilizer: float = 1e-6) -> None:
        self.STABILITY_FACTOR = _check_number(stabilizer, "stabilizer")

    def terms(self, call: ModuleCall) -> list[Term]:
        m = call.module
        pos = _with_weight(m, lambda w: w.clamp(min=0))
        neg = _with_weight(m, lambda w: w.clamp(max=0))
        return [
            Term(tuple(x.clamp(min=0) for x in call.xs), pos),
            Term(tuple(x.clamp(max=0) for x in call.xs), neg),
        ]


class ZBoxRule(PropagationRule):
    """The z^B rule (Montavon et al., 2017) for an input layer whose inputs lie in [low, high].

    ``z = Wx − W⁺l − W⁻h`` (no bias): a pixel also gets relevance for how far it is from the
    bound that would lower the output, so dark pixels of an image can be relevant too.

    Args:
        low: lower bound of the input: a number or a tensor broadcastable to the input
            (e.g. per channel, ``(1, C, 1, 1)``).
        high: upper bound, likewise.
        stabilizer: the ε added to ``z``.
    """

    def __init__(self, low: float | Tensor, high: float | Tensor, stabilizer: float = 1e-6) -> None:
        for name, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, int | float | Tensor):
                raise TypeError(f"{name} must be a number or a tensor, got {type(v).__name__}")
        lo, hi = torch.as_tensor(low), torch.as_tensor(high)
        try:
            bad = bool((lo > hi).any())
        except RuntimeError:
            raise ArgumentError(
                f"low and high must broadcast together, got shapes {tuple(lo.shape)} and "
                f"{tuple(hi.shape)}"
            ) from None
        if bad:
            raise ArgumentError("low must not exceed high")
        self.low, self.high = low, high
        self.STABILITY_FACTOR = _check_number(stabilizer, "stabilizer")

    def _bound(self, value: float | Tensor, x: Tensor) -> Tensor:
        b = torch.as_tensor(value, dtype=x.dtype, device=x.device)
        try:
            return b.expand_as(x)
        except RuntimeError:
            raise ArgumentError(
                f"ZBoxRule bound of shape {tuple(b.shape)} does not broadcast to the input of "
                f"shape {tuple(x.shape)}"
            ) from None

    def terms(self, call: ModuleCall) -> list[Term]:
        m, x = call.module, call.x
        if len(call.xs) != 1:
            raise ArgumentError(
                f"ZBoxRule needs a module with one input, {type(m).__name__} has more"
            )
        lo, hi = self._bound(self.low, x), self._bound(self.high, x)
        return [
            Term(call.xs, _no_bias(m)),
            Term((lo,), _with_weight(m, lambda w: w.clamp(min=0)), -1.0),
            Term((hi,), _with_weight(m, lambda w: w.clamp(max=0)), -1.0),
        ]


class FlatRule(PropagationRule):
    """The flat rule (Kohlbrenner et al., 2020): relevance spread evenly over each output's
    receptive field, whatever the inputs and weights (``x = 1``, ``w = 1``, no bias).

    Args:
        stabilizer: the ε added to ``z``.
    """

    def __init__(self, stabilizer: float = 1e-6) -> None:
        self.STABILITY_FACTOR = _check_number(stabilizer, "stabilizer")

    def terms(self, call: ModuleCall) -> list[Term]:
        ones = tuple(torch.ones_like(x) for x in call.xs)
        return [Term(ones, _with_weight(call.module, torch.ones_like))]


class WSquareRule(PropagationRule):
    """The w² rule (Montavon et al., 2017): relevance in proportion to squared weights
    (``x = 1``, ``w → w²``, no bias), for input layers with unbounded inputs.

    Args:
        stabilizer: the ε added to ``z``.
    """

    def __init__(self, stabilizer: float = 1e-6) -> None:
        self.STABILITY_FACTOR = _check_number(stabilizer, "stabilizer")

    def terms(self, call: ModuleCall) -> list[Term]:
        ones = tuple(torch.ones_like(x) for x in call.xs)
        return [Term(ones, _with_weight(call.module, lambda w: w * w))]
