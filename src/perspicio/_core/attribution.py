"""Base classes with Captum's names: what every attribution object has in common."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perspicio._core.call import (
    Tensors,
    as_tensors,
    batch_size_of,
    format_args,
    normalize_baselines,
)
from perspicio._core.forward import run_forward
from perspicio._core.hooks import check_layer
from perspicio._core.sites import LayerSite
from perspicio._core.target import flat_rows, normalize_target
from perspicio._core.validate import ArgumentError


class Attribution:
    """An attribution method bound to a model (or any forward function)."""

    # set per instance by methods with a ``multiply_by_inputs`` constructor argument
    _multiply_by_inputs: bool = False

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        if not callable(forward_func):
            raise TypeError(
                f"forward_func must be a callable (a model or a function), got "
                f"{type(forward_func).__name__}"
            )
        self.forward_func = forward_func

    def attribute(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement attribute")

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"attribute_future is not implemented for {type(self).__name__}")

    def has_convergence_delta(self) -> bool:
        """Whether ``attribute`` can return a completeness error (a convergence delta)."""
        return False

    @property
    def multiplies_by_inputs(self) -> bool:
        """Whether attributions are multiplied by ``inputs - baselines`` (global attribution)."""
        return self._multiply_by_inputs

    @classmethod
    def get_name(cls) -> str:
        """A readable name: the class name with a space before every capital after the first."""
        name = cls.__name__
        return name[:1] + "".join(" " + c if c.isupper() else c for c in name[1:])


class GradientAttribution(Attribution):
    """An attribution method that uses gradients of the model."""

    def compute_convergence_delta(
        self,
        attributions: Tensor | tuple[Tensor, ...],
        start_point: Any,
        end_point: Tensor | tuple[Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
    ) -> Tensor:
        """Completeness error per example: ``sum(attributions) - (f(end) - f(start))``.

        ``attributions`` may be a layer's (any number of tensors, one row per example).
        """
        attrs = as_tensors(attributions, "attributions")
        ends = as_tensors(end_point, "end_point")
        n = batch_size_of(ends, "end_point")
        sizes = [a.shape[0] if a.dim() else None for a in attrs]
        if any(size != n for size in sizes):
            raise ArgumentError(
                f"attributions have batch sizes {sizes} but end_point has {n} examples"
            )
        starts = tuple(
            s.expand_as(e)
            for s, e in zip(normalize_baselines(start_point, ends, "start_point"), ends)
        )
        tgt = normalize_target(target, n)
        args = format_args(additional_forward_args)
        with torch.no_grad():
            f_end = tgt.select(run_forward(self.forward_func, ends, args))
            f_start = tgt.select(run_forward(self.forward_func, starts, args))
        total = sum_rows(attrs)
        return total - (f_end - f_start).reshape(total.shape).to(total.dtype)


def sum_rows(tensors: Tensors) -> Tensor:
    """Per-example sum over every input tensor: shape ``(N,)``."""
    return torch.stack([flat_rows(t).sum(1) for t in tensors]).sum(0)


class PerturbationAttribution(Attribution):
    """An attribution method that only evaluates the model on perturbed inputs."""

    _multiply_by_inputs = True


class _LayerMixin:
    layer: Any
    device_ids: list[int] | None
    forward_func: Callable[..., Any]

    def _bind_layer(
        self,
        forward_func: Any,
        layer: Any,
        device_ids: list[int] | None,
        allow_none: bool = False,
    ) -> None:
        self.device_ids = device_ids
        if layer is None and allow_none:  # set later, as TCAV does with each of its layers
            self.layer = None
            return
        layers = layer if isinstance(layer, list | tuple) else [layer]
        if not layers:
            raise ArgumentError("layer must be a module or a non-empty list of modules, got []")
        for i, m in enumerate(layers):
            check_layer(forward_func, m, f"layer[{i}]" if isinstance(layer, list) else "layer")
        self.layer = layer

    def _site(self, to_input: bool = False) -> LayerSite:
        """The site of this method's layer (of all its layers, when given a list).

        ``device_ids`` default to those of a DataParallel ``forward_func``.
        """
        if self.layer is None:
            raise ArgumentError(
                f"{type(self).__name__} has no layer: give one to the constructor or set .layer"
            )
        layers = tuple(self.layer) if isinstance(self.layer, list | tuple) else self.layer
        ids = self.device_ids
        if ids is None:
            ids = getattr(self.forward_func, "device_ids", None)
        return LayerSite(layers, to_input, tuple(ids) if ids else None)

    def _restore(self, groups: Sequence[Tensors]) -> Any:
        """Per-layer results in Captum's form: a tensor per layer (a tuple where the layer has
        several), in a list when the method was given a list of layers."""
        forms = [g[0] if len(g) == 1 else tuple(g) for g in groups]
        return forms if isinstance(self.layer, list | tuple) else forms[0]


def check_single_layer(layer: Any, who: str) -> None:
    """Only some Layer methods take a list of layers (as in Captum)."""
    if isinstance(layer, list | tuple):
        raise TypeError(f"{who} takes a single layer (an nn.Module), got a {type(layer).__name__}")


class LayerAttribution(Attribution, _LayerMixin):
    """Attribution to the units of a hidden layer."""

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        device_ids: list[int] | None = None,
    ) -> None:
        Attribution.__init__(self, forward_func)
        self._bind_layer(forward_func, layer, device_ids, allow_none=True)

    @staticmethod
    def interpolate(
        layer_attribution: Tensor,
        interpolate_dims: int | tuple[int, ...],
        interpolate_mode: str = "nearest",
    ) -> Tensor:
        """Upsample a layer map (e.g. Grad-CAM) to ``interpolate_dims`` (the input's size)."""
        return F.interpolate(layer_attribution, size=interpolate_dims, mode=interpolate_mode)


class NeuronAttribution(Attribution, _LayerMixin):
    """Attribution of one hidden neuron (or a group of them) to the inputs."""

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        device_ids: list[int] | None = None,
    ) -> None:
        check_single_layer(layer, type(self).__name__)
        Attribution.__init__(self, forward_func)
        self._bind_layer(forward_func, layer, device_ids)
