"""NoiseTunnel: SmoothGrad, SmoothGrad² and VarGrad around any attribution method."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
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
from perspicio._core.chunks import chunks
from perspicio._core.sites import LayerSite
from perspicio._core.validate import (
    ArgumentError,
    check_chunk_size,
    check_count,
    per_input_stdevs,
)


class NoiseTunnelType(Enum):
    smoothgrad = 1
    smoothgrad_sq = 2
    vargrad = 3


SUPPORTED_NOISE_TUNNEL_TYPES = [t.name for t in NoiseTunnelType]


def _expand(value: Any, n: int, k: int, lists: bool = False) -> Any:
    """Repeat per-example values (batch dim ``n``) ``k`` times each, in place.

    Tensors with batch dimension ``n`` are expanded, tuples element by element, and lists of
    length ``n`` only when ``lists`` (per-example targets).
    """
    if isinstance(value, Tensor):
        if value.dim() > 0 and value.shape[0] == n:
            return value.repeat_interleave(k, dim=0)
        return value
    if lists and isinstance(value, list) and len(value) == n:
        return [v for v in value for _ in range(k)]
    if isinstance(value, tuple):
        return tuple(_expand(v, n, k) for v in value)
    return value


def _flatten(result: Any) -> tuple[list[Tensor], Any]:
    """The tensors of a (possibly nested) attribution result and a way to rebuild it."""
    if isinstance(result, Tensor):
        return [result], None
    if isinstance(result, tuple | list):
        flat: list[Tensor] = []
        spec = []
        for item in result:
            ts, sub = _flatten(item)
            spec.append((len(ts), sub))
            flat.extend(ts)
        return flat, (type(result), spec)
    raise TypeError(f"cannot aggregate an attribution result of type {type(result).__name__}")


def _rebuild(flat: list[Tensor], spec: Any) -> Any:
    if spec is None:
        return flat[0]
    kind, parts = spec
    out, i = [], 0
    for count, sub in parts:
        out.append(_rebuild(flat[i : i + count], sub))
        i += count
    return kind(out)


class LayerNoise:
    """A Layer method that NoiseTunnel may perturb at its layer instead of at its inputs.

    Noise cannot be added to integer inputs (token ids). For such inputs NoiseTunnel draws the
    noise in the space of the method's layer (an embedding, say) and the method adds it to the
    layer's values at the inputs (see :meth:`noisy`); baselines stay clean.
    """

    _noise: Tensors | None = None

    def noise_site(self, kwargs: dict[str, Any]) -> LayerSite:
        """Where the noise goes, given the ``attribute`` keyword arguments."""
        site: LayerSite = self._site(bool(kwargs.get("attribute_to_layer_input", False)))  # type: ignore[attr-defined]
        if len(site.layers) != 1:
            raise ArgumentError(
                "NoiseTunnel puts the noise for integer inputs on the method's layer: "
                "give the method a single layer"
            )
        return site

    @contextmanager
    def layer_noise(self, noise: Tensors) -> Iterator[None]:
        """Inside the block, :meth:`noisy` adds ``noise`` to the layer's values."""
        self._noise = noise
        try:
            yield
        finally:
            self._noise = None

    def noisy(self, values: Tensors) -> Tensors:
        """The layer's values at the inputs, plus NoiseTunnel's noise when there is some."""
        if self._noise is None:
            return values
        return tuple(v + e.to(v.dtype) for v, e in zip(values, self._noise))


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
        total: list[Tensor] | None = None
        total_sq: list[Tensor] | None = None
        deltas: list[Tensor] = []
        spec: Any = None
        for a, b in chunks(nt_samples, nt_samples_batch_size):
            k = b - a
            noisy = tuple(
                (x.unsqueeze(1) + e[:, a:b]).reshape(n * k, *x.shape[1:]) for x, e in zip(xs, noise)
            )
            kw = {key: _expand(v, n, k, key == "target") for key, v in kwargs.items()}
            if picks is not None:
                kw["baselines"] = tuple(p[:, a:b].reshape(n * k, *p.shape[2:]) for p in picks)
            with self._noisy_layer(layer_noise, a, b):
                out = self.attribution_method.attribute(noisy if is_tuple else noisy[0], **kw)
            if want_delta:
                out, delta = out
                deltas.append(delta.reshape(n, k))
            flat, spec = _flatten(out)
            sums = [t.reshape(n, k, *t.shape[1:]).sum(1) for t in flat]
            sqs = [(t * t).reshape(n, k, *t.shape[1:]).sum(1) for t in flat]
            total = sums if total is None else [u + v for u, v in zip(total, sums)]
            total_sq = sqs if total_sq is None else [u + v for u, v in zip(total_sq, sqs)]
        assert total is not None and total_sq is not None
        mean = [t / nt_samples for t in total]
        mean_sq = [t / nt_samples for t in total_sq]
        if nt_type == "smoothgrad":
            agg = mean
        elif nt_type == "smoothgrad_sq":
            agg = mean_sq
        else:
            agg = [sq - m * m for sq, m in zip(mean_sq, mean)]
        result = _rebuild(agg, spec)
        return (result, torch.cat(deltas, dim=1).reshape(-1)) if want_delta else result

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
