"""NoiseTunnel: SmoothGrad, SmoothGrad² and VarGrad around any attribution method."""

from __future__ import annotations

from contextlib import nullcontext
from enum import Enum
from typing import Any

import torch
from torch import Tensor

from perspicio._core.attribution import Attribution
from perspicio._core.call import (
    Tensors,
    as_tensors,
    batch_size_of,
    build_call,
    normalize_distribution,
)
from perspicio._core.validate import (
    ArgumentError,
    check_chunk_size,
    check_count,
    per_input_stdevs,
)
from perspicio._core.wrapped import LayerNoise, PerExample, Reduction, flatten, reduce_samples


class NoiseTunnelType(Enum):
    smoothgrad = 1
    smoothgrad_sq = 2
    vargrad = 3


SUPPORTED_NOISE_TUNNEL_TYPES = [t.name for t in NoiseTunnelType]


class NoiseTunnel(Attribution):
    """Averages attributions over noisy copies of the inputs.

    SmoothGrad (Smilkov et al., 2017, https://arxiv.org/abs/1706.03825) takes the mean,
    SmoothGrad² the mean of squares, and VarGrad (Adebayo et al., 2018,
    https://arxiv.org/abs/1810.03307) the variance of the attributions of ``nt_samples``
    copies of each input with Gaussian noise of standard deviation ``stdevs``. Integer inputs
    (token ids) cannot take noise: around a method that supports it
    (:class:`LayerIntegratedGradients`, see :class:`LayerNoise`) their noise goes on the
    method's layer (the embedding) instead.

    Example:
        >>> import torch
        >>> from perspicio.attr import NoiseTunnel, Saliency
        >>> from perspicio.testing import ReLUMLP
        >>> _ = torch.manual_seed(0)
        >>> nt = NoiseTunnel(Saliency(ReLUMLP()))
        >>> nt.attribute(torch.randn(2, 6), nt_samples=8, stdevs=0.1, target=0).shape
        torch.Size([2, 6])
    """

    def __init__(self, attribution_method: Attribution) -> None:
        if not isinstance(attribution_method, Attribution):
            raise TypeError(
                "attribution_method must be a perspicio attribution object, got "
                f"{type(attribution_method).__name__}"
            )
        super().__init__(attribution_method.forward_func)
        self.attribution_method = attribution_method
        self.is_delta_supported = attribution_method.has_convergence_delta()

    @property
    def multiplies_by_inputs(self) -> bool:
        return self.attribution_method.multiplies_by_inputs

    def has_convergence_delta(self) -> bool:
        return self.is_delta_supported

    def attribute(
        self,
        inputs: Any,
        nt_type: str = "smoothgrad",
        nt_samples: int = 5,
        nt_samples_batch_size: int | None = None,
        stdevs: float | tuple[float, ...] = 1.0,
        draw_baseline_from_distrib: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Attributions of the wrapped method, aggregated over noisy copies of the inputs.

        Args:
            nt_type: ``smoothgrad`` (mean), ``smoothgrad_sq`` (mean of squares) or
                ``vargrad`` (variance).
            nt_samples: noisy copies per example.
            nt_samples_batch_size: copies per call of the wrapped method (``None``: all).
                All noise is drawn up front, so this does not change the result.
            stdevs: noise standard deviation, one value or one per input.
            draw_baseline_from_distrib: draw each copy's baseline at random from
                ``baselines`` (a distribution), as GradientShap does.
            **kwargs: passed to the wrapped method's ``attribute``.
        """
        if nt_type not in SUPPORTED_NOISE_TUNNEL_TYPES:
            raise ArgumentError(
                f"nt_type must be one of {', '.join(SUPPORTED_NOISE_TUNNEL_TYPES)}; got {nt_type!r}"
            )
        check_count(nt_samples, "nt_samples")
        check_chunk_size(nt_samples_batch_size, "nt_samples_batch_size")
        is_tuple = isinstance(inputs, tuple | list)
        xs = as_tensors(inputs)
        n = batch_size_of(xs)
        sds = per_input_stdevs(stdevs, len(xs))
        layer_noise, sds = self._layer_noise(xs, nt_samples, sds, kwargs)
        noise = self._noise(xs, nt_samples, sds)
        picks = self._baseline_picks(kwargs, xs, n, nt_samples, draw_baseline_from_distrib)
        want_delta = bool(kwargs.get("return_convergence_delta", False))
        per_example = PerExample(kwargs, n)

        def run(a: int, b: int) -> tuple[Any, ...]:
            k = b - a
            noisy = tuple(
                (x.unsqueeze(1) + e[:, a:b]).reshape(n * k, *x.shape[1:]) for x, e in zip(xs, noise)
            )
            kw = per_example.repeat(k)
            if picks is not None:
                kw["baselines"] = tuple(p[:, a:b].reshape(n * k, *p.shape[2:]) for p in picks)
            with self._noisy_layer(layer_noise, a, b):
                out = self.attribution_method.attribute(noisy if is_tuple else noisy[0], **kw)
            delta = None
            if want_delta:
                out, delta = out
            flat, structure = flatten(out)
            per_sample = [t.reshape(n, k, *t.shape[1:]) for t in flat]  # (N, k, ...)
            squares = [(t * t).reshape(n, k, *t.shape[1:]) for t in flat]
            extra = (delta.reshape(n, k),) if delta is not None else ()
            return (structure.rebuild(per_sample), structure.rebuild(squares), *extra)

        how: tuple[Reduction, ...] = ("sum", "sum", "cat") if want_delta else ("sum", "sum")
        total, total_sq, *deltas = reduce_samples(nt_samples, nt_samples_batch_size, run, how)
        result = _aggregate(nt_type, total, total_sq, nt_samples)
        return (result, deltas[0].reshape(-1)) if want_delta else result

    def _layer_noise(
        self, xs: Tensors, nt_samples: int, sds: tuple[float, ...], kwargs: dict[str, Any]
    ) -> tuple[list[Tensor] | None, tuple[float, ...]]:
        """Noise at the wrapped method's layer for integer inputs that ask for noise.

        Returns ``(N, nt_samples, ...)`` noise per layer tensor (``None`` when no input needs
        it) and the standard deviations left for the inputs themselves.
        """
        method = self.attribution_method
        wanted = {s for x, s in zip(xs, sds) if not x.is_floating_point() and s > 0}
        if not wanted or not isinstance(method, LayerNoise):
            return None, sds  # _noise explains that integer inputs cannot take noise
        if len(wanted) > 1:
            raise ArgumentError(
                f"integer inputs get their noise at the layer, so they need one stdev; got "
                f"{sorted(wanted)}"
            )
        site = method.noise_site(kwargs)
        call = build_call(xs, None, kwargs.get("additional_forward_args"))
        values = site.values(self.forward_func, call)
        sd = wanted.pop()
        noise = [
            torch.randn((len(v), nt_samples, *v.shape[1:]), dtype=v.dtype, device=v.device) * sd
            for v in values
        ]
        return noise, tuple(s if x.is_floating_point() else 0.0 for x, s in zip(xs, sds))

    def _noisy_layer(self, noise: list[Tensor] | None, a: int, b: int) -> Any:
        """The wrapped method's layer noise for samples ``a`` to ``b`` (example-major rows)."""
        if noise is None:
            return nullcontext()
        assert isinstance(self.attribution_method, LayerNoise)
        share = tuple(e[:, a:b].reshape(-1, *e.shape[2:]) for e in noise)
        return self.attribution_method.layer_noise(share)

    @staticmethod
    def _noise(xs: tuple[Tensor, ...], nt_samples: int, sds: tuple[float, ...]) -> list[Tensor]:
        """Noise for every copy, drawn up front: ``(N, nt_samples, ...)`` per input."""
        out = []
        for x, sd in zip(xs, sds):
            shape = (x.shape[0], nt_samples, *x.shape[1:])
            if not x.is_floating_point():
                if sd > 0:
                    raise TypeError(
                        "NoiseTunnel cannot add noise to integer inputs; set stdevs=0 for them "
                        "or wrap LayerIntegratedGradients on the embedding layer, which takes "
                        "the noise there"
                    )
                out.append(torch.zeros(shape, dtype=x.dtype, device=x.device))
            else:
                out.append(torch.randn(shape, dtype=x.dtype, device=x.device) * sd)
        return out

    @staticmethod
    def _baseline_picks(
        kwargs: dict[str, Any], xs: tuple[Tensor, ...], n: int, nt_samples: int, draw: bool
    ) -> list[Tensor] | None:
        """One baseline per noisy copy, drawn from the distribution: ``(N, nt_samples, ...)``."""
        if not draw:
            return None
        dist = normalize_distribution(kwargs.get("baselines"), xs)
        idx = torch.randint(dist[0].shape[0], (n, nt_samples), device=dist[0].device)
        return [d[idx] for d in dist]


def _aggregate(nt_type: str, total: Any, total_sq: Any, nt_samples: int) -> Any:
    """The mean, mean of squares or variance from the sums over samples (nested alike)."""
    flat, structure = flatten(total)
    mean = [t / nt_samples for t in flat]
    mean_sq = [t / nt_samples for t in flatten(total_sq)[0]]
    if nt_type == "smoothgrad":
        return structure.rebuild(mean)
    if nt_type == "smoothgrad_sq":
        return structure.rebuild(mean_sq)
    return structure.rebuild([sq - m * m for sq, m in zip(mean_sq, mean)])
