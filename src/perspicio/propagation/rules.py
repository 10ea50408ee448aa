"""Rules: objects that change how the gradient flows back through one module call.

A rule sees one call of a module (its input ``x`` and output ``y``) and, in the backward
pass, maps the gradient arriving at ``y`` to the gradient leaving through ``x``. The value of
the forward pass is never changed. DeepLift multipliers, LRP relevance rules and the
Guided/Deconvolution ReLU overrides are all rules; a :class:`~perspicio.propagation.composite.Composite`
decides which rule applies to which module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perspicio._core.hooks import swapped
from perspicio._core.validate import ArgumentError


class _Slot:
    def __repr__(self) -> str:
        return "SLOT"


SLOT = _Slot()
"""Marks where a tensor of ``ModuleCall.xs`` goes among a module's positional inputs."""


@dataclass
class ModuleCall:
    """One call of a module during a forward pass under a composite.

    Attributes:
        module: the module called.
        x: its first input, detached.
        y: its output, detached.
        x_local: a leaf copy of ``x`` from which ``y_local`` was computed, so that the
            module's own gradient can be taken at backward time.
        y_local: the output computed from ``x_local``.
        xs: every floating-point tensor among its positional inputs, detached (``x`` first).
        xs_local: the leaf copies of ``xs``.
        args: the positional inputs, with :data:`SLOT` in place of the tensors of ``xs``.
    """

    module: nn.Module
    x: Tensor
    y: Tensor
    x_local: Tensor
    y_local: Tensor
    xs: tuple[Tensor, ...] = ()
    xs_local: tuple[Tensor, ...] = ()
    args: tuple[Any, ...] = (SLOT,)

    def __post_init__(self) -> None:
        if not self.xs:
            self.xs, self.xs_local = (self.x,), (self.x_local,)

    def plain_grad(self, grad_out: Tensor) -> Tensor:
        """The module's ordinary gradient: ``(∂y/∂x)ᵀ grad_out``."""
        (g,) = torch.autograd.grad(self.y_local, self.x_local, grad_out, retain_graph=True)
        return g

    def plain_grads(self, grad_out: Tensor) -> tuple[Tensor, ...]:
        """The module's ordinary gradient w.r.t. each of ``xs`` (zeros for an unused one)."""
        gs = torch.autograd.grad(
            self.y_local, self.xs_local, grad_out, retain_graph=True, allow_unused=True
        )
        return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(gs, self.xs))

    def forward_with(
        self, inputs: tuple[Tensor, ...], params: Mapping[str, Tensor | None] | None = None
    ) -> Tensor:
        """The module's output for other ``inputs`` (in place of ``xs``), and optionally other
        parameters (see :func:`swapped`).

        The module's ``forward`` is called directly, so no hook runs, and in training mode its
        buffers are swapped for copies (BatchNorm statistics are not updated).
        """
        m = self.module
        values: dict[str, Any] = dict(params or {})
        if m.training:
            for name, b in m._buffers.items():
                if b is not None and name not in values:
                    values[name] = b.clone()
        it = iter(t.clone() for t in inputs)  # a copy: in-place modules must not hit leaves
        args = tuple(next(it) if a is SLOT else a for a in self.args)
        with swapped(m, values):
            out = m.forward(*args)
        if not isinstance(out, Tensor):
            raise TypeError(
                f"propagation rules apply to modules returning one tensor; "
                f"{type(m).__name__} returned {type(out).__name__}"
            )
        return out


class PropagationRule:
    """Base class for rules. Subclasses override :meth:`backward`.

    ``backward`` returns the gradient w.r.t. the module's first input, or a tuple with one
    gradient per tensor of ``call.xs`` (``None`` for none).
    """

    def backward(self, call: ModuleCall, grad_out: Tensor) -> Tensor | tuple[Tensor | None, ...]:
        return call.plain_grad(grad_out)


class _Override(torch.autograd.Function):
    """Returns ``y`` unchanged; its backward asks the rule for the gradients w.r.t. the inputs."""

    @staticmethod
    def forward(
        ctx: Any, rule: PropagationRule, call: ModuleCall, y: Tensor, *xs: Tensor
    ) -> Tensor:
        ctx.rule, ctx.call, ctx.n = rule, call, len(xs)
        return y.clone()

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        with torch.enable_grad():
            g = ctx.rule.backward(ctx.call, grad_out)
        grads = g if isinstance(g, tuple) else (g, *([None] * (ctx.n - 1)))
        if len(grads) != ctx.n:
            raise ArgumentError(
                f"{type(ctx.rule).__name__}.backward returned {len(grads)} gradients for "
                f"{type(ctx.call.module).__name__}, which has {ctx.n} tensor inputs: a rule "
                "must give one per tensor input (None for none)"
            )
        return (None, None, None, *grads)


def override(rule: PropagationRule, x: Tensor | tuple[Tensor, ...], call: ModuleCall) -> Tensor:
    """The module's output, connected to ``x`` (one input or a tuple) through ``rule``'s backward."""
    xs = x if isinstance(x, tuple) else (x,)
    out = _Override.apply(rule, call, call.y, *xs)
    return out  # type: ignore[no-any-return]


# --- Guided Backprop and Deconvolution -------------------------------------------------


class GuidedReLURule(PropagationRule):
    """Guided Backpropagation: the ReLU gradient, keeping only positive signals."""

    def backward(self, call: ModuleCall, grad_out: Tensor) -> Tensor:
        return F.relu(call.plain_grad(grad_out))


class DeconvReLURule(PropagationRule):
    """Deconvolution: a ReLU applied to the backward signal, ignoring the forward mask."""

    def backward(self, call: ModuleCall, grad_out: Tensor) -> Tensor:
        return F.relu(grad_out)


# --- DeepLift (Rescale rule) ------------------------------------------------------------
# Under DeepLift the batch holds the inputs followed by their references (2N rows), so each
# call sees x = [x; x_ref] and y = [y; y_ref]. Multipliers are computed for the first half
# and used for both halves.


def _halves(t: Tensor) -> tuple[Tensor, Tensor]:
    n = t.shape[0] // 2
    return t[:n], t[n:]


class RescaleRule(PropagationRule):
    """DeepLift Rescale for elementwise non-linearities: multiplier ``Δy / Δx``.

    Where ``|Δx| < eps`` the ordinary gradient is used.
    """

    def __init__(self, eps: float = 1e-10) -> None:
        self.eps = eps

    def backward(self, call: ModuleCall, grad_out: Tensor) -> Tensor:
        x, x_ref = _halves(call.x)
        y, y_ref = _halves(call.y)
        dx, dy = x - x_ref, y - y_ref
        g = _halves(grad_out)[0]
        small = dx.abs() < self.eps
        new = g * dy / dx  # inf/nan where Δx is tiny: replaced below
        if bool(small.any()):  # rare (Δx is a pre-activation difference): skip the extra pass
            new = torch.where(small, _halves(call.plain_grad(grad_out))[0], new)
        return torch.cat([new, new])


class SoftmaxRescaleRule(RescaleRule):
    """Rescale for softmax, then centred over the softmax dimension for each example.

    Softmax outputs depend on every input of their row, so per-element multipliers are
    normalised to sum to zero (a shift of all logits changes nothing).
    """

    def backward(self, call: ModuleCall, grad_out: Tensor) -> Tensor:
        new = _halves(super().backward(call, grad_out))[0]
        dim = getattr(call.module, "dim", None)
        dim = -1 if dim is None else dim
        new = new - new.mean(dim=dim, keepdim=True)
        return torch.cat([new, new])


class MaxPoolRescaleRule(PropagationRule):
    """DeepLift for max pooling.

    Each window's output difference ``Δy`` is routed to the arg-max position of whichever of
    input and reference has the larger pooled value, and divided by ``Δx`` there.
    """

    def __init__(self, eps: float = 1e-10) -> None:
        self.eps = eps

    def backward(self, call: ModuleCall, grad_out: Tensor) -> Tensor:
        m = call.module
        nd = call.x.dim() - 2
        pool = getattr(F, f"max_pool{nd}d")
        _, idx = pool(
            call.x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, return_indices=True
        )  # type: ignore[arg-type]
        x, x_ref = _halves(call.x)
        y, y_ref = _halves(call.y)
        i, i_ref = _halves(idx)
        g = _halves(grad_out)[0]
        top = torch.maximum(y, y_ref)
        routed = _scatter(g * (top - y_ref), i, x) + _scatter(g * (y - top), i_ref, x)
        dx = x - x_ref
        small = dx.abs() < self.eps
        new = routed / dx  # inf/nan where Δx is tiny: replaced below
        if bool(small.any()):
            new = torch.where(small, _scatter(g, i, x), new)
        return torch.cat([new, new])


def _scatter(values: Tensor, indices: Tensor, like: Tensor) -> Tensor:
    """Add pooled-window ``values`` back at their flat spatial ``indices`` (overlaps add up)."""
    out = torch.zeros(
        like.shape[0], like.shape[1], like[0, 0].numel(), dtype=values.dtype, device=values.device
    )
    out.scatter_add_(2, indices.flatten(2), values.flatten(2))
    return out.view_as(like)


DEEPLIFT_NONLINEAR: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ELU,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
)
DEEPLIFT_POOLS: tuple[type[nn.Module], ...] = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)


def deeplift_rules(eps: float = 1e-10) -> dict[type[nn.Module], PropagationRule]:
    """The DeepLift (Rescale) rule map."""
    rescale = RescaleRule(eps)
    rules: dict[type[nn.Module], PropagationRule] = dict.fromkeys(DEEPLIFT_NONLINEAR, rescale)
    rules[nn.Softmax] = SoftmaxRescaleRule(eps)
    rules.update(dict.fromkeys(DEEPLIFT_POOLS, MaxPoolRescaleRule(eps)))
    return rules
