"""GradientShap (expected gradients) on any site."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from perspicio._core.attribution import (
    GradientAttribution,
    LayerAttribution,
    NeuronAttribution,
    check_single_layer,
    sum_rows,
)
from perspicio._core.call import (
    Call,
    TensorOrTensors,
    Tensors,
    build_call,
    normalize_distribution,
)
from perspicio._core.chunks import chunks
from perspicio._core.forward import NeuronSelector, check_neuron_selector, scores
from perspicio._core.sites import InputSite, Objective, Site, neuron_objective, target_objective
from perspicio._core.validate import check_chunk_size, check_count, per_input_stdevs


def gaussian_noise(inputs: Tensors, stdevs: tuple[float, ...]) -> Tensors:
    """``x + N(0, σ²)`` per input (the input itself where ``σ = 0``)."""
    return tuple(x + torch.randn_like(x) * s if s > 0 else x for x, s in zip(inputs, stdevs))


def expected_gradients(
    forward_func: Callable[..., Any],
    site: Site,
    objective: Objective,
    call: Call,
    distribution: Tensors,
    n_samples: int,
    stdevs: tuple[float, ...],
    internal_batch_size: int | None,
    multiply_by_inputs: bool,
    with_delta: bool = False,
) -> tuple[Tensors, Tensor | None]:
    """Mean over samples of ``∇site f(b + α(x̃ − b)) · (site(x̃) − site(b))``.

    For every example, ``n_samples`` rows draw a baseline ``b`` from the distribution, a point
    ``α ~ U(0, 1)`` and Gaussian noise for ``x̃ = x + ε``. All draws happen up front, so the
    result does not depend on ``internal_batch_size`` (rows per forward/backward pass).
    """
    n, s = call.batch_size, n_samples
    rows = call.repeat(s, interleave=True)  # example-major: row i * s + j
    ends = gaussian_noise(rows.inputs, stdevs)
    pick = torch.randint(distribution[0].shape[0], (n * s,), device=distribution[0].device)
    starts = tuple(d[pick] for d in distribution)
    alpha = torch.rand(n * s, device=ends[0].device)
    points = tuple(
        b + alpha.view(-1, *([1] * (e.dim() - 1))).to(e.dtype) * (e - b)
        for b, e in zip(starts, ends)
    )
    parts: list[Tensors] = []
    deltas: list[Tensor] = []
    for a, z in list(chunks(n * s, internal_batch_size)) or [(0, 0)]:  # N=0: one empty pass
        sub = rows.rows(slice(a, z))
        grads, _ = site.grads(objective, sub.with_inputs(tuple(p[a:z] for p in points)))
        if multiply_by_inputs:
            hi = site.values(forward_func, sub.with_inputs(tuple(e[a:z] for e in ends)))
            lo = site.values(forward_func, sub.with_inputs(tuple(b[a:z] for b in starts)))
            grads = tuple(g * (h - low) for g, h, low in zip(grads, hi, lo))
        parts.append(grads)
        if with_delta:
            with torch.no_grad():
                f_hi = scores(forward_func, sub, tuple(e[a:z] for e in ends))
                f_lo = scores(forward_func, sub, tuple(b[a:z] for b in starts))
            deltas.append(sum_rows(grads) - (f_hi - f_lo).reshape(-1).to(grads[0].dtype))
    per_row = tuple(torch.cat(ts) for ts in zip(*parts))
    means = tuple(t.reshape(n, s, *t.shape[1:]).mean(1) for t in per_row)
    return means, (torch.cat(deltas) if with_delta else None)


class GradientShap(GradientAttribution):
    """GradientShap / expected gradients (Lundberg & Lee, 2017, https://arxiv.org/abs/1705.07874).

    An SHAP approximation: the expected value, over baselines drawn from ``baselines``, points
    drawn uniformly on the path and Gaussian input noise, of gradient × (input − baseline).
    Beyond the reference API, ``internal_batch_size`` bounds the rows per forward/backward
    pass without changing the result.

    Example:
        >>> import torch
        >>> from perspicio.attr import GradientShap
        >>> from perspicio.testing import ReLUMLP
        >>> _ = torch.manual_seed(0)
        >>> gs = GradientShap(ReLUMLP())
        >>> gs.attribute(torch.randn(2, 6), baselines=torch.randn(10, 6), target=0).shape
        torch.Size([2, 6])
    """

    def __init__(self, forward_func: Any, multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self,
        inputs: TensorOrTensors,
        baselines: Any,
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: Any = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        internal_batch_size: int | None = None,
    ) -> TensorOrTensors | tuple[TensorOrTensors, Tensor]:
        """Expected gradients of the target output w.r.t. the inputs.

        Args:
            baselines: a distribution of reference examples, ``(B, ...)`` per input, or a
                callable returning one.
            n_samples: random samples per example.
            stdevs: standard deviation of the Gaussian noise added to each input.
            internal_batch_size: rows (examples × samples) per forward/backward pass.
        """
        call, sds, dist = _shap_call(
            inputs, baselines, n_samples, stdevs, target, additional_forward_args,
            internal_batch_size,
        )  # fmt: skip
        attrs, delta = expected_gradients(
            self.forward_func, InputSite(), target_objective(self.forward_func), call, dist,
            n_samples, sds, internal_batch_size, self._multiply_by_inputs,
            with_delta=return_convergence_delta,
        )  # fmt: skip
        result = call.restore(attrs)
        if delta is None:
            return result
        return result, delta

    def has_convergence_delta(self) -> bool:
        return True


class LayerGradientShap(LayerAttribution, GradientAttribution):
    """GradientShap at a layer (Lundberg & Lee, 2017, https://arxiv.org/abs/1705.07874).

    The expected value, over baselines drawn from ``baselines``, points drawn uniformly on the
    input path and Gaussian input noise, of the gradient at the layer times the difference of
    the layer's values at the (noisy) input and at the baseline. Beyond the reference API,
    ``internal_batch_size`` bounds the rows per forward/backward pass.

    Example:
        >>> import torch
        >>> from perspicio.attr import LayerGradientShap
        >>> from perspicio.testing import ReLUMLP
        >>> _ = torch.manual_seed(0)
        >>> model = ReLUMLP()
        >>> lgs = LayerGradientShap(model, model.fc1)
        >>> lgs.attribute(torch.randn(2, 6), baselines=torch.randn(10, 6), target=0).shape
        torch.Size([2, 8])
    """

    def __init__(
        self,
        forward_func: Any,
        layer: nn.Module,
        device_ids: list[int] | None = None,
        multiply_by_inputs: bool = True,
    ) -> None:
        check_single_layer(layer, "LayerGradientShap")
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self,
        inputs: TensorOrTensors,
        baselines: Any,
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: Any = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
        internal_batch_size: int | None = None,
    ) -> Any:
        """Expected gradients of the target output w.r.t. the layer.

        Args:
            baselines: a distribution of reference inputs, ``(B, ...)`` per input, or a
                callable returning one.
            n_samples: random samples per example.
            stdevs: standard deviation of the Gaussian noise added to each input.
            attribute_to_layer_input: attribute to the layer's inputs instead of its output.
            internal_batch_size: rows (examples × samples) per forward/backward pass.
        """
        call, sds, dist = _shap_call(
            inputs, baselines, n_samples, stdevs, target, additional_forward_args,
            internal_batch_size,
        )  # fmt: skip
        attrs, delta = expected_gradients(
            self.forward_func, self._site(attribute_to_layer_input),
            target_objective(self.forward_func), call, dist, n_samples, sds,
            internal_batch_size, self._multiply_by_inputs, with_delta=return_convergence_delta,
        )  # fmt: skip
        result = self._restore([attrs])
        return result if delta is None else (result, delta)

    def has_convergence_delta(self) -> bool:
        return True


class NeuronGradientShap(NeuronAttribution, GradientAttribution):
    """GradientShap of one hidden neuron w.r.t. the inputs (Lundberg & Lee, 2017,
    https://arxiv.org/abs/1705.07874): :class:`GradientShap` with the neuron's value as the
    objective.

    Example:
        >>> import torch
        >>> from perspicio.attr import NeuronGradientShap
        >>> from perspicio.testing import ReLUMLP
        >>> _ = torch.manual_seed(0)
        >>> model = ReLUMLP()
        >>> ngs = NeuronGradientShap(model, model.fc2)
        >>> ngs.attribute(torch.randn(2, 6), 1, baselines=torch.randn(10, 6)).shape
        torch.Size([2, 6])
    """

    def __init__(
        self,
        forward_func: Any,
        layer: nn.Module,
        device_ids: list[int] | None = None,
        multiply_by_inputs: bool = True,
    ) -> None:
        NeuronAttribution.__init__(self, forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self,
        inputs: TensorOrTensors,
        neuron_selector: NeuronSelector,
        baselines: Any,
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        additional_forward_args: Any = None,
        attribute_to_neuron_input: bool = False,
        internal_batch_size: int | None = None,
    ) -> TensorOrTensors:
        """Expected gradients of the selected neuron w.r.t. the inputs.

        Args:
            neuron_selector: an int or a tuple of ints and slices indexing the layer's output
                after the batch dimension, or a callable mapping the layer's output to one
                value per example.
            baselines: a distribution of reference inputs, or a callable returning one.
            attribute_to_neuron_input: select the neuron from the layer's input.
            internal_batch_size: rows (examples × samples) per forward/backward pass.
        """
        check_neuron_selector(neuron_selector)
        call, sds, dist = _shap_call(
            inputs, baselines, n_samples, stdevs, None, additional_forward_args,
            internal_batch_size,
        )  # fmt: skip
        site = self._site(attribute_to_neuron_input)
        attrs, _ = expected_gradients(
            self.forward_func, InputSite(), neuron_objective(self.forward_func, site, neuron_selector),
            call, dist, n_samples, sds, internal_batch_size, self._multiply_by_inputs,
        )  # fmt: skip
        return call.restore(attrs)


def _shap_call(
    inputs: Any,
    baselines: Any,
    n_samples: int,
    stdevs: Any,
    target: Any,
    additional_forward_args: Any,
    internal_batch_size: int | None,
) -> tuple[Call, tuple[float, ...], Tensors]:
    """Validate GradientShap's arguments: the call, one stdev per input, the distribution."""
    check_count(n_samples, "n_samples")
    check_chunk_size(internal_batch_size, "internal_batch_size")
    call = build_call(inputs, target, additional_forward_args, require_float=True)
    return (
        call,
        per_input_stdevs(stdevs, len(call.inputs)),
        normalize_distribution(baselines, call.inputs),
    )
