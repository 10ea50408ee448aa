"""Sites: where an attribution is taken, the inputs or a layer's input/output.

A gradient or path method is written once against a site; ``LayerIntegratedGradients`` is
``IntegratedGradients`` on a :class:`LayerSite`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from dataclasses import replace as with_fields
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from perspicio._core.call import Call, Tensors
from perspicio._core.forward import NeuronSelector, forward_call, scores, select_neuron
from perspicio._core.hooks import capture, gather, grad, leaves, replace

Objective = Callable[[Call, Tensors], Tensor]
"""Maps a call and the model inputs to one score per example."""


def target_objective(forward_func: Callable[..., Any]) -> Objective:
    """The model's target scores (see :mod:`perspicio._core.target`)."""
    return lambda call, inputs: scores(forward_func, call, inputs)


def loss_objective(
    forward_func: Callable[..., Any],
    loss_fn: Callable[[Any, Any], Tensor] | None = None,
    labels: Any = None,
) -> Objective:
    """A loss in place of a target score: ``loss_fn(output, labels)``, for attacks.

    Without ``loss_fn`` the loss is ``-log`` of the call's target score (the model is taken to
    output probabilities). The loss may be one value per example or a scalar for the batch;
    gradients are taken of its sum.
    """

    def objective(call: Call, inputs: Tensors) -> Tensor:
        out = forward_call(forward_func, call, inputs)
        if loss_fn is None:
            return -torch.log(call.target.select(out))
        loss = loss_fn(out, labels)
        if not isinstance(loss, Tensor):
            raise TypeError(f"loss_fn must return a tensor, got {type(loss).__name__}")
        return loss

    return objective


def neuron_objective(
    forward_func: Callable[..., Any], site: LayerSite, selector: NeuronSelector
) -> Objective:
    """The value of one neuron (or a group) of ``site``'s layer, read from a captured activation.

    Every ``Neuron*`` class is its primary algorithm with this objective in place of the target.
    """
    layer = site.layers[0]

    def objective(call: Call, inputs: Tensors) -> Tensor:
        with site.capture() as rec:
            forward_call(forward_func, call, inputs)
        return select_neuron(rec[layer], selector, rec.is_tuple[layer])

    return objective


class Site(Protocol):
    def values(self, forward_func: Callable[..., Any], call: Call) -> Tensors: ...

    def grads(
        self,
        objective: Objective,
        call: Call,
        at: Tensors | None = None,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> tuple[Tensors, Tensor]: ...

    def grads_and_values(
        self, objective: Objective, call: Call, grad_kwargs: dict[str, Any] | None = None
    ) -> tuple[Tensors, Tensors, Tensor]: ...


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

    def grads_and_values(
        self, objective: Objective, call: Call, grad_kwargs: dict[str, Any] | None = None
    ) -> tuple[Tensors, Tensors, Tensor]:
        """Input gradients, the inputs and the objective."""
        grads, out = self.grads(objective, call, grad_kwargs=grad_kwargs)
        return grads, call.inputs, out


@dataclass(frozen=True)
class Probe:
    """A layer site's values for one call, with what is needed to replace them later.

    Attributes:
        values: the values of every layer of the site, concatenated.
        counts: how many tensors each layer gives (its output is a tensor or a tuple).
        calls: how many times each layer runs in one forward pass.
    """

    values: Tensors
    counts: tuple[int, ...]
    calls: tuple[int, ...]

    def split(self, flat: Sequence[Tensor]) -> list[Tensors]:
        """Per-layer groups of a flat sequence laid out like ``values``."""
        return split(flat, self.counts)


def split(flat: Sequence[Tensor], counts: Sequence[int]) -> list[Tensors]:
    """``flat`` cut into consecutive groups of ``counts`` tensors."""
    out, i = [], 0
    for c in counts:
        out.append(tuple(flat[i : i + c]))
        i += c
    return out


@dataclass(frozen=True)
class LayerSite:
    """Attribution to a layer's output (or its input with ``to_input=True``).

    Attributes:
        layer: a module, or a tuple of modules whose values are concatenated (in order).
        to_input: attribute to the positional inputs of the layer instead of its output.
        device_ids: the device order of a DataParallel model, to gather per-replica values.
        counts: tensors per layer (only needed to replace several layers at once).
        calls: calls of each layer per forward pass. A reused layer is always attributed at
            its last call: capturing keeps the last call, and replacing, once ``calls`` is
            known (see :meth:`bind`), replaces only the last call.
    """

    layer: nn.Module | tuple[nn.Module, ...]
    to_input: bool = False
    device_ids: tuple[int, ...] | None = None
    counts: tuple[int, ...] | None = None
    calls: tuple[int, ...] | None = None

    @property
    def layers(self) -> tuple[nn.Module, ...]:
        return self.layer if isinstance(self.layer, tuple) else (self.layer,)

    def capture(self, leaf: bool = False) -> Any:
        """:func:`~perspicio._core.hooks.capture` on this site's layers.

        Leaves of several layers stay connected, so that each gets its full gradient.
        """
        return capture(
            self.layers,
            inputs=self.to_input,
            leaf=leaf,
            device_ids=self.device_ids,
            connected=len(self.layers) > 1,
        )

    def probe(self, forward_func: Callable[..., Any], call: Call) -> Probe:
        """The layers' values for ``call`` (no graph kept), with their layout."""
        with torch.no_grad(), self.capture() as rec:
            forward_call(forward_func, call)
        per_layer = [rec[m] for m in self.layers]
        return Probe(
            values=tuple(t for v in per_layer for t in v),
            counts=tuple(len(v) for v in per_layer),
            calls=tuple(rec.calls_per_pass(m) for m in self.layers),
        )

    def bind(self, probe: Probe) -> LayerSite:
        """This site with the layout found by ``probe`` (needed by :meth:`grads` with ``at``)."""
        return with_fields(self, counts=probe.counts, calls=probe.calls)

    def values(self, forward_func: Callable[..., Any], call: Call) -> Tensors:
        """The layer's activations for ``call`` (no graph kept)."""
        return self.probe(forward_func, call).values

    @contextmanager
    def replaced(self, values: Tensors) -> Iterator[None]:
        """Every layer of the site returns (or receives) its share of ``values``."""
        counts = self.counts or (len(values) // len(self.layers),) * len(self.layers)
        with ExitStack() as stack:
            for i, (m, v) in enumerate(zip(self.layers, split(values, counts))):
                last = None if self.calls is None else self.calls[i] - 1
                stack.enter_context(
                    replace(m, v, self.to_input, call_index=last, device_ids=self.device_ids)
                )
            yield

    def grads(
        self,
        objective: Objective,
        call: Call,
        at: Tensors | None = None,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> tuple[Tensors, Tensor]:
        """Gradients of the objective w.r.t. the layer's values (or with ``at`` swapped in)."""
        if at is None:
            grads, _, out = self.grads_and_values(objective, call, grad_kwargs)
            return grads, out
        with torch.enable_grad():
            x = leaves(at)
            with self.replaced(x):
                out = objective(call, call.inputs)
            return grad(out, x, grad_kwargs), out.detach()

    def grads_and_values(
        self, objective: Objective, call: Call, grad_kwargs: dict[str, Any] | None = None
    ) -> tuple[Tensors, Tensors, Tensor]:
        """Gradients of the objective w.r.t. the layer's values, the values and the objective."""
        grads, values, out = self.grads_and_values_by_layer(objective, call, grad_kwargs)
        return sum(grads, ()), sum(values, ()), out

    def grads_and_values_by_layer(
        self, objective: Objective, call: Call, grad_kwargs: dict[str, Any] | None = None
    ) -> tuple[list[Tensors], list[Tensors], Tensor]:
        """:meth:`grads_and_values` grouped by layer (a layer may give several tensors)."""
        with torch.enable_grad():
            with self.capture(leaf=True) as rec:
                out = objective(call, call.inputs)
            shares = [rec.shares(m) for m in self.layers]
            flat = tuple(t for per_layer in shares for s in per_layer for t in s)
            gs = grad(out, flat, grad_kwargs)
        grads, values, i = [], [], 0
        for per_layer in shares:
            w = len(per_layer[0])
            grads.append(gather([gs[i + d * w : i + (d + 1) * w] for d in range(len(per_layer))]))
            values.append(tuple(t.detach() for t in gather(per_layer)))
            i += w * len(per_layer)
        return grads, values, out.detach()
