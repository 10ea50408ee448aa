"""Kernel SHAP (Lundberg & Lee, 2017): LIME with the Shapley kernel and an exact efficiency fit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import TensorOrTensors, as_tensors
from perspicio._core.masks import MaskType
from perspicio._core.sweep import AUTO, future_of
from perspicio._core.validate import ArgumentError, check_count
from perspicio.perturbation.coalitions import Problem, Sampler, uniform_subsets
from perspicio.perturbation.lime import Lime
from perspicio.perturbation.lime_functions import default_from_interp_rep_transform
from perspicio.perturbation.surrogate import ShapleyLinearRegression


def _shapley_coalitions(p: Problem) -> Tensor:
    """Kernel SHAP's coalitions ``(1, S, M)``, shared by all surrogates: the full and the empty
    one, then sizes ``k`` drawn with probability ∝ ``(M − 1) / (k (M − k))`` and a uniformly
    random subset of that size."""
    m, device = p.groups.n_features, p.call.inputs[0].device
    count = p.n_samples if m > 1 else min(p.n_samples, 2)
    z = torch.zeros(1, count, m, dtype=torch.bool, device=device)
    z[:, 0] = True
    rest = count - 2
    if rest > 0:
        k = torch.arange(1, m, device=device, dtype=torch.float64)
        sizes = 1 + torch.multinomial((m - 1) / (k * (m - k)), rest, replacement=True)
        z[0, 2:] = uniform_subsets(sizes, m)
    return z


class _ShapSampler:
    """Kernel SHAP's coalition sampling (its kernel is in the sampling: unit weights)."""

    def __init__(self, inf_weight: float) -> None:
        self.inf_weight = inf_weight

    def draw(self, p: Problem) -> Tensor:
        return _shapley_coalitions(p)

    def weights(self, p: Problem, z: Tensor) -> Tensor:
        size = z.sum(2)
        ends = (size == 0) | (size == z.shape[2])
        return torch.where(ends, self.inf_weight, 1.0).to(torch.float64)


class KernelShap(Lime):
    """Kernel SHAP (Lundberg & Lee, 2017, https://arxiv.org/abs/1705.07874).

    LIME with the Shapley kernel: coalition sizes ``k`` are drawn with probability
    ∝ ``(M − 1) / (k (M − k))`` and a uniformly random coalition of that size is taken, the
    first two samples being the full and the empty coalition. The surrogate is
    :class:`~perspicio.models.ShapleyLinearRegression`: least squares under the efficiency
    constraints, so the attributions of each example sum exactly (to float rounding) to
    ``f(x) − f(baseline)`` (Captum approximates this with a weight of 10⁶ on the two end
    points). As samples grow the result converges to the Shapley values. ``n_samples``
    counts the two end points, so it must be at least 2. One set of coalitions serves every
    example of the batch (as for :class:`Lime`), so a single Gram matrix and factorisation
    serve all the fits.

    Example:
        >>> import torch
        >>> from perspicio.attr import KernelShap
        >>> from perspicio.testing import BasicLinearModel
        >>> _ = torch.manual_seed(0)
        >>> model = BasicLinearModel()
        >>> x = torch.randn(2, 4)
        >>> attr = KernelShap(model).attribute(x, target=0, n_samples=30)
        >>> torch.allclose(attr.sum(1), model(x)[:, 0] - model(torch.zeros(1, 4))[:, 0])
        True
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        Lime.__init__(
            self,
            forward_func,
            interpretable_model=ShapleyLinearRegression(),
            similarity_func=self.kernel_shap_similarity_kernel,
            perturb_func=self.kernel_shap_perturb_generator,
        )
        self.inf_weight = 1000000.0

    needs_finite = True  # the Shapley regression has no solution with NaN/Inf outputs

    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTensors,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: MaskType = None,
        n_samples: int = 25,
        perturbations_per_eval: int = AUTO,
        return_input_shape: bool = True,
        show_progress: bool = False,
    ) -> TensorOrTensors:
        """Kernel SHAP values per example; the arguments are those of :meth:`Lime.attribute`."""
        _check_two(n_samples)
        return Lime.attribute(
            self, inputs, baselines, target, additional_forward_args, feature_mask, n_samples,
            perturbations_per_eval, return_input_shape, show_progress,
        )  # fmt: skip

    attribute_future = future_of(attribute)

    def kernel_shap_similarity_kernel(
        self, _: Any, __: Any, interpretable_sample: Tensor, **kwargs: Any
    ) -> Tensor:
        """Weight of one coalition: ``inf_weight`` for the empty and full ones, else 1."""
        if "num_interp_features" not in kwargs:
            raise ArgumentError("kernel_shap_similarity_kernel needs num_interp_features")
        size = int(interpretable_sample.sum())
        ends = size in (0, int(kwargs["num_interp_features"]))
        return torch.tensor([self.inf_weight if ends else 1.0])

    def kernel_shap_perturb_generator(
        self, original_inp: TensorOrTensors, **kwargs: Any
    ) -> Iterator[Tensor]:
        """Coalitions ``(1, M)``: the full one, the empty one, then Shapley-kernel samples."""
        if "num_interp_features" not in kwargs:
            raise ArgumentError("kernel_shap_perturb_generator needs num_interp_features")
        m, device = int(kwargs["num_interp_features"]), as_tensors(original_inp)[0].device
        yield torch.ones(1, m, dtype=torch.long, device=device)
        yield torch.zeros(1, m, dtype=torch.long, device=device)
        sizes = kwargs.get("num_select_distribution") or _size_distribution(m)
        while m > 1:
            order = torch.randperm(m, device=device)
            yield (order < int(sizes.sample())).long().reshape(1, m)

    def _defaults(self) -> Sampler | None:
        if (
            getattr(self.perturb_func, "__func__", None) is KernelShap.kernel_shap_perturb_generator
            and getattr(self.similarity_func, "__func__", None)
            is KernelShap.kernel_shap_similarity_kernel
            and self.from_interp_rep_transform is default_from_interp_rep_transform
        ):
            return _ShapSampler(self.inf_weight)
        return super()._defaults()

    def _extra_kwargs(self, p: Problem) -> dict[str, Any]:
        return {"num_select_distribution": _size_distribution(p.width)}


def _size_distribution(m: int) -> torch.distributions.Categorical:
    """Coalition sizes ``0 .. M−1`` with probability ∝ ``(M − 1) / (k (M − k))`` (none at 0)."""
    k = torch.arange(m, dtype=torch.float64)
    probs = torch.zeros(m, dtype=torch.float64)
    probs[1:] = (m - 1) / (k[1:] * (m - k[1:]))
    return torch.distributions.Categorical(probs if m > 1 else torch.ones(1))


def _check_two(n_samples: int) -> None:
    check_count(n_samples, "n_samples")
    if n_samples < 2:
        raise ArgumentError(
            f"KernelShap needs n_samples >= 2 (the full and the empty coalition), got {n_samples}"
        )
