"""Hooks as context managers: everything is undone in ``finally``, nothing stays on the model.

Two building blocks serve every Layer and Neuron method:

- :func:`capture` records what a module returns (or receives) during a forward pass;
- :func:`replace` substitutes a module's output (or input) with given values.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from perspicio._core.call import Tensors
from perspicio._core.validate import ArgumentError


@contextmanager
def handles(*hs: RemovableHandle) -> Iterator[None]:
    """Remove the given hook handles on exit, whatever happens."""
    try:
        yield
    finally:
        for h in hs:
            h.remove()


def check_layer(model: Any, layer: nn.Module, name: str = "layer") -> None:
    """A clear error for a layer that is not a module, or not part of ``model``."""
    if not isinstance(layer, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(layer).__name__}")
    if isinstance(model, nn.Module) and not any(m is layer for m in model.modules()):
        raise ArgumentError(
            f"{name} {type(layer).__name__} is not a submodule of the model "
            f"{type(model).__name__}; pass a module taken from the model itself"
        )


def _as_tuple(value: Any) -> tuple[Tensors, bool]:
    if isinstance(value, Tensor):
        return (value,), False
    if isinstance(value, tuple | list) and all(isinstance(v, Tensor) for v in value):
        return tuple(value), True
    raise TypeError(
        f"layer values must be tensors or tuples of tensors, got {type(value).__name__}"
    )


def device_order(
    devices: Sequence[torch.device], device_ids: Sequence[int] | None
) -> list[torch.device]:
    """``devices`` in the order DataParallel split the batch over them (``device_ids``).

    One device needs no order. Several need ``device_ids``, as DataParallel's replicas run in
    threads and record their shares of the batch in any order.
    """
    if len(devices) < 2:
        return list(devices)
    if not device_ids:
        raise ArgumentError(
            f"layer values were recorded on several devices ({', '.join(map(str, devices))}): "
            "pass device_ids (the DataParallel device order) to the attribution method"
        )
    by_index = {d.index: d for d in devices}
    if len(by_index) != len(devices) or any(d.index not in device_ids for d in devices):
        raise ArgumentError(
            f"device_ids {list(device_ids)} do not match the devices the layer ran on: "
            f"{', '.join(map(str, devices))}"
        )
    return [by_index[i] for i in device_ids if i in by_index]


def gather(shares: Sequence[Tensors]) -> Tensors:
    """Per-device shares of a batch, concatenated in order on the first share's device."""
    if len(shares) == 1:
        return tuple(shares[0])
    device = shares[0][0].device
    return tuple(torch.cat([s[i].to(device) for s in shares]) for i in range(len(shares[0])))


def share(values: Tensors, device: torch.device, device_ids: Sequence[int] | None) -> Tensors:
    """The rows of ``values`` that DataParallel sends to ``device`` (all rows without it).

    DataParallel scatters a batch in ``len(device_ids)`` chunks (``Tensor.chunk``), in order.
    """
    if not device_ids or len(device_ids) < 2 or device.index not in device_ids:
        return values
    k = list(device_ids).index(device.index)
    return tuple(v.chunk(len(device_ids))[k].to(device) for v in values)


@dataclass
class Captured:
    """What :func:`capture` or :func:`replace` recorded: the last call of each module wins.

    Under DataParallel each replica records its share of the batch; ``rec[layer]`` gathers the
    shares in ``device_ids`` order.
    """

    values: dict[nn.Module, Tensors] = field(default_factory=dict)
    is_tuple: dict[nn.Module, bool] = field(default_factory=dict)
    calls: dict[nn.Module, int] = field(default_factory=dict)
    parts: dict[nn.Module, dict[torch.device, Tensors]] = field(default_factory=dict)
    device_calls: dict[tuple[nn.Module, torch.device], int] = field(default_factory=dict)
    device_ids: Sequence[int] | None = None
    lock: Any = field(default_factory=threading.Lock, repr=False)

    def record(self, layer: nn.Module, tensors: Tensors, is_tuple: bool) -> None:
        """Store one call's tensors (replicas call this from their own threads)."""
        device = tensors[0].device
        with self.lock:
            self.device_calls[layer, device] = self.device_calls.get((layer, device), 0) + 1
            self.values[layer] = tensors
            self.parts.setdefault(layer, {})[device] = tensors
            self.is_tuple[layer] = is_tuple
            self.calls[layer] = self.calls.get(layer, 0) + 1

    def __getitem__(self, layer: nn.Module) -> Tensors:
        return gather(self.shares(layer))

    def shares(self, layer: nn.Module) -> list[Tensors]:
        """What each device recorded for ``layer``, in batch order (one share without DataParallel)."""
        if layer not in self.values:
            raise ArgumentError(
                f"layer {type(layer).__name__} was not called during the forward pass; "
                "is it part of the model's computation?"
            )
        parts = self.parts[layer]
        return [parts[d] for d in device_order(list(parts), self.device_ids)]

    def calls_per_pass(self, layer: nn.Module) -> int:
        """How many times ``layer`` ran in one forward pass (on each device)."""
        return max((c for (m, _), c in self.device_calls.items() if m is layer), default=0)


@contextmanager
def capture(
    layers: Sequence[nn.Module],
    inputs: bool = False,
    leaf: bool = False,
    device_ids: Sequence[int] | None = None,
    connected: bool = False,
) -> Iterator[Captured]:
    """Record each layer's output (or positional inputs) during the forward passes run inside.

    With ``leaf=True`` the recorded tensors are fresh leaves that require grad and the model
    continues from them, so gradients with respect to the layer are always available and the
    graph before the layer is not kept. Otherwise the recorded tensors stay in the graph.
    Either way the model receives a copy, so in-place operations downstream cannot change
    what was recorded. Input hooks are put before the layer's other pre-hooks (they record
    what the layer is given); output hooks after its existing hooks (they record what it
    returns, e.g. after a propagation rule). ``device_ids`` orders the shares of
    DataParallel replicas.

    With ``leaf=True, connected=True`` the model continues from ``leaf + (value − value)``
    instead, still linked to the graph before the layer: gradients w.r.t. several layers,
    one upstream of another, are then all available.
    """
    record = Captured(device_ids=device_ids)

    def store(layer: nn.Module, value: Any) -> Any:
        tensors, is_tuple = _as_tuple(value)
        if leaf and len(tensors) > 1:
            # one tensor of a tuple may be computed from another (attention probabilities
            # returned next to the hidden state made from them): gradients are taken w.r.t.
            # the tensors themselves, so each gets its total gradient through the other uses
            tensors = tuple(t if t.requires_grad else _leaf(t) for t in tensors)
            record.record(layer, tensors, is_tuple)
        elif leaf:
            recorded = tuple(_leaf(t) for t in tensors)
            if connected:  # the link adds zero to the value but keeps the upstream gradient
                tensors = tuple(r + (t - t.detach()) for r, t in zip(recorded, tensors))
            else:
                tensors = recorded
            record.record(layer, recorded, is_tuple)
        else:
            record.record(layer, tensors, is_tuple)
        copies = tuple(t.clone() for t in tensors)
        return copies if is_tuple else copies[0]

    def make_hook(layer: nn.Module) -> RemovableHandle:
        # keyed by the layer itself: DataParallel calls the hooks with replicas of it
        if inputs:
            return layer.register_forward_pre_hook(
                lambda m, a: _pre_store(store, layer, a), prepend=True
            )
        return layer.register_forward_hook(lambda m, a, out: store(layer, out))

    with ExitStack() as stack:
        for layer in layers:
            if leaf and not inputs:  # the layer's own graph links the tensors of its output
                stack.enter_context(handles(layer.register_forward_pre_hook(_graph_inputs)))
            stack.enter_context(handles(make_hook(layer)))
        yield record


def _leaf(t: Tensor) -> Tensor:
    return t.detach().requires_grad_(t.is_floating_point())


def _graph_inputs(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The layer's floating-point inputs as leaves where they are outside the graph.

    Without it a frozen model given plain inputs computes the layer without a graph, and the
    tensors of a tuple output would lose their links to each other.
    """
    if not any(
        isinstance(a, Tensor) and a.is_floating_point() and not a.requires_grad for a in args
    ):
        return None
    return tuple(
        _leaf(a) if isinstance(a, Tensor) and a.is_floating_point() and not a.requires_grad else a
        for a in args
    )


def _pre_store(store: Callable[[nn.Module, Any], Any], module: nn.Module, args: tuple) -> Any:
    tensors = tuple(a for a in args if isinstance(a, Tensor))
    if len(tensors) != len(args):
        return None  # non-tensor positional args: record nothing replaceable
    new = store(module, tensors)
    return new if isinstance(new, tuple) else (new,)


@contextmanager
def replace(
    layer: nn.Module,
    values: Tensors | Callable[[Tensors], Tensors],
    inputs: bool = False,
    call_index: int | None = None,
    device_ids: Sequence[int] | None = None,
) -> Iterator[Captured]:
    """Make ``layer`` return ``values`` (or receive them as its positional inputs).

    ``values`` may be a callable that maps the layer's real output (as a tuple) to the
    replacement, e.g. to add noise to an embedding. The replacement tensors are recorded in the
    yielded :class:`Captured` so gradients can be taken with respect to them. With
    ``call_index`` only that call of the layer (counting from 0 inside the ``with`` block) is
    replaced, e.g. the last call of a reused layer. Under DataParallel (``device_ids``) each
    replica receives its share of the rows of ``values``.
    """
    record = Captured(device_ids=device_ids)
    seen: dict[torch.device, int] = {}  # calls so far, per device (DataParallel replica)

    def substitute(value: Any) -> Any:
        tensors, is_tuple = _as_tuple(value)
        device = tensors[0].device
        with record.lock:
            index = seen.get(device, 0)
            seen[device] = index + 1
        if call_index is not None and index != call_index:
            return None
        new = tuple(values(tensors)) if callable(values) else share(values, device, device_ids)
        if len(new) != len(tensors):
            raise ArgumentError(
                f"replacement for layer {type(layer).__name__} has {len(new)} tensors, the "
                f"layer has {len(tensors)}"
            )
        record.record(layer, new, is_tuple)
        copies = tuple(t.clone() for t in new)  # in-place ops downstream must not hit leaves
        return copies if is_tuple else copies[0]

    def pre_hook(m: nn.Module, args: tuple[Any, ...]) -> Any:
        new = substitute(tuple(args))
        return None if new is None else tuple(_list(new))

    if inputs:
        h = layer.register_forward_pre_hook(pre_hook, prepend=True)
    else:
        h = layer.register_forward_hook(lambda m, a, out: substitute(out))
    with handles(h):
        yield record


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, tuple) else [value]


def leaves(inputs: Tensors) -> Tensors:
    """Detached copies of ``inputs`` that require grad; the user's tensors are never touched."""
    return tuple(x.detach().requires_grad_(x.is_floating_point()) for x in inputs)


def grad(outputs: Tensor, inputs: Tensors, grad_kwargs: dict[str, Any] | None = None) -> Tensors:
    """Gradients of ``outputs.sum()`` w.r.t. ``inputs``; zeros where an input is unused."""
    kwargs = dict(grad_kwargs or {})
    kwargs.setdefault("allow_unused", True)
    gs = torch.autograd.grad(outputs.sum(), inputs, **kwargs)
    return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(gs, inputs))


@contextmanager
def swapped(module: nn.Module, values: Mapping[str, Any]) -> Iterator[None]:
    """Give ``module`` other parameters, buffers or plain attributes for the ``with`` block.

    The original objects are put back on exit, whatever happens: the user's tensors are never
    written to, so weights, buffers, ``requires_grad`` and ``.grad`` come back untouched.
    A replacement parameter is a new ``Parameter`` that does not require grad (``None`` removes
    it for the block, as for a layer without bias).
    """
    saved: list[tuple[str, str, Any]] = []
    try:
        for name, value in values.items():
            if name in module._parameters:
                saved.append(("param", name, module._parameters[name]))
                new = value if value is None else nn.Parameter(value.detach(), False)
                module._parameters[name] = new
            elif name in module._buffers:
                saved.append(("buffer", name, module._buffers[name]))
                module._buffers[name] = value
            elif name in vars(module):
                saved.append(("attr", name, vars(module)[name]))
                setattr(module, name, value)
            else:  # a class attribute or method (e.g. ``forward``): shadowed, then unshadowed
                saved.append(("shadow", name, None))
                setattr(module, name, value)
        yield
    finally:
        for kind, name, old in reversed(saved):
            if kind == "param":
                module._parameters[name] = old
            elif kind == "buffer":
                module._buffers[name] = old
            elif kind == "attr":
                setattr(module, name, old)
            else:
                delattr(module, name)


@contextmanager
def loaded(model: nn.Module, state: Mapping[str, Tensor], strict: bool = True) -> Iterator[None]:
    """Give ``model`` the weights of ``state`` (a checkpoint's state dict) for the ``with`` block.

    The values are copied into the model's own tensors, so parameter objects, ``requires_grad``
    flags and ``.grad`` are untouched; the original values are copied back on exit, whatever
    happens. A state that does not fit the model (missing or unexpected keys with ``strict``,
    shapes that differ) is rejected before anything is changed.
    """
    check_state(model, state, strict)
    own = model.state_dict(keep_vars=True)
    saved = {k: v.detach().clone() for k, v in own.items() if k in state}
    try:
        with torch.no_grad():
            for k, v in state.items():
                if k in own:
                    own[k].copy_(v)
        yield
    finally:
        with torch.no_grad():
            for k, v in saved.items():
                own[k].copy_(v)


def check_state(
    model: nn.Module, state: Any, strict: bool = True, name: str = "checkpoint"
) -> None:
    """An :class:`ArgumentError` naming the keys or shapes where ``state`` does not fit ``model``."""
    if not isinstance(state, Mapping):
        raise TypeError(
            f"{name} must be a state dict (a mapping of names to tensors), got "
            f"{type(state).__name__}"
        )
    own = model.state_dict(keep_vars=True)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if strict and (missing or unexpected):
        raise ArgumentError(
            f"{name} does not match the model: missing keys {missing[:5]}, unexpected keys "
            f"{unexpected[:5]}"
        )
    for k, v in state.items():
        if k in own and (not isinstance(v, Tensor) or v.shape != own[k].shape):
            got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise ArgumentError(
                f"{name} entry {k!r} has shape {got}, the model's has {tuple(own[k].shape)}"
            )
