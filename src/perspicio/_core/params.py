"""Parameter sites: gradients of a loss with respect to a model's parameters, per example.

Influence methods (TracIn, influence functions) and anything else that asks "how would this
example move the weights" need one gradient per training example. :class:`ParameterSite`
computes them with ``torch.func`` (``vmap`` over ``grad`` of a functional call), for any layer
type, and falls back to one backward pass per example where ``vmap`` cannot run the model
(e.g. data-dependent control flow). The model itself is never changed: its parameters are
read, not written, and its mode, flags and ``.grad`` stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.call import Tensors
from perspicio._core.chunks import chunks
from perspicio._core.validate import ArgumentError

LossFn = Callable[[Tensor, Any], Tensor]
"""``loss_fn(output, labels) -> loss`` (a scalar, or one value per example)."""


def resolve_layers(
    model: nn.Module, layers: Sequence[nn.Module | str], name: str = "layers"
) -> list[str]:
    """Names (prefixes in ``model.named_modules()``) of the given modules or module names."""
    by_module = {id(m): n for n, m in model.named_modules()}
    names = dict(model.named_modules())
    out = []
    for i, layer in enumerate(layers):
        if isinstance(layer, str):
            if layer not in names:
                raise ArgumentError(f"{name}[{i}] {layer!r} is not a module of the model")
            out.append(layer)
        elif isinstance(layer, nn.Module):
            if id(layer) not in by_module:
                raise ArgumentError(
                    f"{name}[{i}] {type(layer).__name__} is not a submodule of the model"
                )
            out.append(by_module[id(layer)])
        else:
            raise TypeError(f"{name}[{i}] must be a module or a module name, got {layer!r}")
    return out


@dataclass(frozen=True)
class ParameterSite:
    """The parameters whose gradients are taken: all trainable ones, or those of ``layers``.

    Attributes:
        model: the module whose parameters are differentiated.
        names: the parameter names (as in ``model.named_parameters()``), in order.
    """

    model: nn.Module
    names: tuple[str, ...]

    @classmethod
    def of(cls, model: nn.Module, layers: Sequence[nn.Module | str] | None = None) -> ParameterSite:
        """The site of ``model``'s trainable parameters, or of the parameters of ``layers``."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        params = dict(model.named_parameters())
        if layers is None:
            names = tuple(n for n, p in params.items() if p.requires_grad)
        else:
            prefixes = resolve_layers(model, layers)
            names = tuple(
                n for n in params if any(n.startswith(f"{p}.") or p == "" for p in prefixes)
            )
        if not names:
            raise ArgumentError("no parameters to take gradients of (layers have no parameters)")
        return cls(model, names)

    @property
    def params(self) -> dict[str, Tensor]:
        all_params = dict(self.model.named_parameters())
        return {n: all_params[n] for n in self.names}

    @property
    def shapes(self) -> tuple[torch.Size, ...]:
        return tuple(p.shape for p in self.params.values())

    @property
    def numel(self) -> int:
        return sum(p.numel() for p in self.params.values())

    def _state(self) -> dict[str, Tensor]:
        state = {n: t.detach() for n, t in self.model.named_parameters()}
        state.update({n: t for n, t in self.model.named_buffers()})
        return state

    def loss(
        self,
        loss_fn: LossFn,
        inputs: Tensors,
        labels: Any,
        args: tuple[Any, ...] = (),
        params: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """``loss_fn(model(*inputs, *args), labels)`` with ``params`` in place of the site's."""
        state = self._state()
        state.update(params if params is not None else self.params)
        out = torch.func.functional_call(self.model, state, (*inputs, *args))
        return loss_fn(out, labels)

    def batch_grads(
        self, loss_fn: LossFn, inputs: Tensors, labels: Any, args: tuple[Any, ...] = ()
    ) -> Tensors:
        """Gradient of the (summed) batch loss w.r.t. each parameter of the site."""
        params = {n: p.detach().requires_grad_(True) for n, p in self.params.items()}
        with torch.enable_grad():
            total = self.loss(loss_fn, inputs, labels, args, params).sum()
            gs = torch.autograd.grad(total, tuple(params.values()), allow_unused=True)
        return tuple(torch.zeros_like(p) if g is None else g for g, p in zip(gs, params.values()))

    def per_example_grads(
        self,
        loss_fn: LossFn,
        inputs: Tensors,
        labels: Any,
        args: tuple[Any, ...] = (),
        chunk_size: int | None = None,
    ) -> Tensors:
        """One gradient per example: a ``(N, *param.shape)`` tensor per parameter of the site.

        Each example's loss is ``loss_fn`` on a batch of one, so a ``mean`` and a ``sum``
        reduction give the same per-example gradient. Tensors among ``labels`` and ``args``
        whose first dimension is ``N`` are split per example; other values are shared.
        """
        n = int(inputs[0].shape[0])
        parts = [
            self._vmapped(
                loss_fn, _rows(inputs, n, a, b), _rows(labels, n, a, b), _rows(args, n, a, b)
            )
            for a, b in chunks(n, chunk_size)
        ]
        if not parts:
            return tuple(p.new_zeros((0, *p.shape)) for p in self.params.values())
        return tuple(torch.cat(gs) for gs in zip(*parts))

    def per_example_sq_norms(
        self,
        loss_fn: LossFn,
        inputs: Tensors,
        labels: Any,
        args: tuple[Any, ...] = (),
        reduction: str = "sum",
        chunk_size: int | None = None,
    ) -> Tensor:
        """``(N,)``: each example's squared gradient norm over the site's parameters.

        Where every parameter belongs to a ``Linear`` layer that sees one row per example, the
        per-example weight gradient is the outer product ``g a^T`` of the loss gradient at the
        layer's output and its input, so ``|g a^T|^2 = |g|^2 |a|^2``: one batched backward
        pass, no per-example gradient formed (Goodfellow, "Efficient Per-Example Gradient
        Computations", 2015). That needs the batch loss (``reduction`` of ``loss_fn`` over the
        batch: ``"sum"``, ``"mean"`` or ``"none"``) and examples that do not interact (no
        batch norm in training mode); otherwise the per-example gradients are formed.
        """
        layers = self.linear_layers()
        if layers is not None:
            norms = self._linear_sq_norms(layers, loss_fn, inputs, labels, args, reduction)
            if norms is not None:
                return norms
        grads = self.per_example_grads(loss_fn, inputs, labels, args, chunk_size)
        total = grads[0].new_zeros(grads[0].shape[0])
        for g in grads:
            total += g.reshape(g.shape[0], -1).pow(2).sum(1)
        return total

    def linear_layers(self) -> dict[nn.Linear, tuple[bool, bool]] | None:
        """``{layer: (weight in site, bias in site)}`` when the site is Linear layers only."""
        modules = dict(self.model.named_modules())
        if any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in modules.values()
        ):
            return None
        out: dict[nn.Linear, tuple[bool, bool]] = {}
        for name in self.names:
            owner, _, leaf = name.rpartition(".")
            layer = modules.get(owner)
            if not isinstance(layer, nn.Linear) or leaf not in ("weight", "bias"):
                return None
            w, b = out.get(layer, (False, False))
            out[layer] = (w or leaf == "weight", b or leaf == "bias")
        return out

    def _linear_sq_norms(
        self,
        layers: dict[nn.Linear, tuple[bool, bool]],
        loss_fn: LossFn,
        inputs: Tensors,
        labels: Any,
        args: tuple[Any, ...],
        reduction: str,
    ) -> Tensor | None:
        from perspicio._core.hooks import capture

        mods = list(layers)
        with torch.enable_grad(), capture(mods, inputs=True) as ins:
            with capture(mods, leaf=True, connected=True) as outs:
                loss = loss_fn(self.model(*inputs, *args), labels)
            if any(outs.calls.get(m, 0) != 1 or ins[m][0].dim() != 2 for m in mods):
                return None  # reused layer or several rows per example: not an outer product
            total = loss.sum() * (int(inputs[0].shape[0]) if reduction == "mean" else 1)
            grads = torch.autograd.grad(total, [outs[m][0] for m in mods], allow_unused=True)
        norms = inputs[0].new_zeros(int(inputs[0].shape[0]), dtype=mods[0].weight.dtype)
        for m, g in zip(mods, grads):
            if g is None:
                continue
            g2 = g.detach().pow(2).sum(1)
            weight, bias = layers[m]
            if weight:
                norms += g2 * ins[m][0].detach().pow(2).sum(1)
            if bias:
                norms += g2
        return norms

    def _vmapped(
        self, loss_fn: LossFn, inputs: Tensors, labels: Any, args: tuple[Any, ...]
    ) -> Tensors:
        n = int(inputs[0].shape[0])
        names = self.names

        dims = (_in_dims(inputs, n), _in_dims(labels, n), _in_dims(args, n))

        def one(params: dict[str, Tensor], xs: Tensors, y: Any, extra: tuple[Any, ...]) -> Tensor:
            xs, y, extra = _batch_of_one((xs, y, extra), dims)
            return self.loss(loss_fn, xs, y, extra, params).sum()

        params = {k: p.detach() for k, p in self.params.items()}
        try:
            with torch.enable_grad():
                gs = torch.func.vmap(torch.func.grad(one), in_dims=(None, *dims))(
                    params, inputs, labels, args
                )
            return tuple(gs[k].detach() for k in names)
        except (RuntimeError, NotImplementedError, ValueError):
            return self._looped(loss_fn, inputs, labels, args)

    def _looped(
        self, loss_fn: LossFn, inputs: Tensors, labels: Any, args: tuple[Any, ...]
    ) -> Tensors:
        """One backward pass per example: for models ``vmap`` cannot run."""
        n = int(inputs[0].shape[0])
        rows = [
            self.batch_grads(
                loss_fn,
                _rows(inputs, n, i, i + 1),
                _rows(labels, n, i, i + 1),
                _rows(args, n, i, i + 1),
            )
            for i in range(n)
        ]
        return tuple(torch.stack(gs) for gs in zip(*rows))


def flatten(grads: Tensors) -> Tensor:
    """Per-example gradients of several parameters as one ``(N, P)`` matrix."""
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1)


def _is_row(value: Any, n: int) -> bool:
    return isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n


def _rows(value: Any, n: int, a: int, b: int) -> Any:
    """Rows ``a:b`` of every per-example tensor in ``value`` (a tensor or a tuple of values)."""
    if isinstance(value, tuple):
        return tuple(_rows(v, n, a, b) for v in value)
    return value[a:b] if _is_row(value, n) else value


def _in_dims(value: Any, n: int) -> Any:
    if isinstance(value, tuple):
        return tuple(_in_dims(v, n) for v in value)
    return 0 if _is_row(value, n) else None


def _batch_of_one(value: Any, dims: Any) -> Any:
    """Inside ``vmap`` a mapped tensor has lost its batch dim: give it back a batch of one."""
    if isinstance(value, tuple):
        return tuple(_batch_of_one(v, d) for v, d in zip(value, dims))
    return value.unsqueeze(0) if dims == 0 else value
