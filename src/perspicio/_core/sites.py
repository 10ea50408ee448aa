"""Sites: where an attribution is taken, the inputs or a layer's input/output.

A gradient or path method is written once against a site; ``LayerIntegratedGradients`` is
``IntegratedGradients`` on a :class:`LayerSite`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from perspicio._core.call import Call, Tensors
from perspicio._core.forward import forward_call, scores
from perspicio._core.hooks import capture, grad, leaves, replace

Objective = Callable[[Call, Tensors], Tensor]
"""Maps a call and the model inputs to one score per example."""


def target_objective(forward_func: Callable[..., Any]) -> Objective:
    """The model's target scores (see :mod:`perspicio._core.target`)."""
    return lambda call, inputs: scores(forward_func, call, inputs)


class Site(Protocol):
    def values(self, forward_func: Callable[..., Any], call: Call) -> Tensors: ...

    def grads(
        self,
        objective: Objective,
        call: Call,
        at: Tensors | None = None,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> tuple[Tensors, Tensor]: ...


@dataclass(frozen=True)
class InputSite:
    """Attribution to the model inputs."""

    def values(self, forward_func: Callable[..., Any], call: Call) -> Tensors:
        return call.inputs

    def grads(
        self,
        objective: Objective,
        call: Call,
        at: Tensors | None = None,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> tuple[Tensors, Tensor]:
        """Gradients of the objective w.r.t. the inputs (or w.r.t. ``at`` fed as inputs)."""
        x = leaves(call.inputs if at is None else at)
        with torch.enable_grad():
            out = objective(call, x)
            return grad(out, x, grad_kwargs), out.detach()


@dataclass(frozen=True)
class LayerSite:
    """Attribution to a layer's output (or its input with ``to_input=True``)."""

    layer: nn.Module
    to_input: bool = False

    def values(self, forward_func: Callable[..., Any], call: Call) -> Tensors:
        """The layer's activations for ``call`` (no graph kept)."""
        with torch.no_grad(), capture([self.layer], inputs=self.to_input) as rec:
            forward_call(forward_func, call)
        return rec[self.layer]

    def is_tuple(self, forward_func: Callable[..., Any], call: Call) -> bool:
        with torch.no_grad(), capture([self.layer], inputs=self.to_input) as rec:
            forward_call(forward_func, call)
        rec[self.layer]
        return rec.is_tuple[self.layer]

    def grads(
        self,
        objective: Objective,
        call: Call,
        at: Tensors | None = None,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> tuple[Tensors, Tensor]:
        """Gradients of the objective w.r.t. the layer's values (or with ``at`` swapped in)."""
        with torch.enable_grad():
            if at is None:
                with capture([self.layer], inputs=self.to_input, leaf=True) as rec:
                    out = objective(call, call.inputs)
            else:
                with replace(self.layer, leaves(at), inputs=self.to_input) as rec:
                    out = objective(call, call.inputs)
            values = rec[self.layer]
            return grad(out, values, grad_kwargs), out.detach()
