"""LIME and Kernel SHAP: fit a linear surrogate to the model on random feature coalitions.

Every example gets ``n_samples`` binary vectors ``z`` over its interpretable features (feature
groups); the model is evaluated on the inputs with the switched-off groups set to the
baseline, and a weighted linear model of the outputs on ``z`` is fitted. Its coefficients are
the attributions.

With the default sampling, transform and similarity functions, nothing runs per sample or
per example in Python: one set of coalitions, shared by all examples, is drawn up front (see
:mod:`perspicio.perturbation.coalitions`), the perturbed inputs are stacked into large
forward passes by the sweep engine (:mod:`perspicio._core.sweep`, chunk size
independent of the results), the LIME kernel weights follow from per-group sums
(:mod:`perspicio.perturbation.lime_functions`, which also holds Captum's helper functions),
and all examples' surrogates are fitted at once by the batched torch solvers of
:mod:`perspicio.perturbation.surrogate`. User-supplied functions keep Captum's
one-sample-at-a-time protocol (only the forward passes are batched), and any ``Model`` (e.g.
a scikit-learn wrapper) is fitted once per example through its ``fit``.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from perspicio._core.attribution import PerturbationAttribution
from perspicio._core.call import TensorOrTensors, Tensors, as_tensors, build_call, check_finite
from perspicio._core.masks import FeatureGroups, MaskType
from perspicio._core.sweep import (
    AUTO,
    check_per_eval,
    execute,
    future_of,
    model_evaluator,
    wants_future,
)
from perspicio._core.validate import ArgumentError, check_count
from perspicio.perturbation.coalitions import (
    Coalitions,
    Explicit,
    Problem,
    SamplePlan,
    Sampler,
    attributions,
    bernoulli,
    count_surrogates,
    example_slice,
)
from perspicio.perturbation.lime_functions import (
    ExpKernel,
    construct_feature_mask,
    default_from_interp_rep_transform,
    default_perturb_func,
    get_exp_kernel_similarity_function,
)
from perspicio.perturbation.surrogate import Model, TorchLasso, fit_surrogate


class _LimeSampler:
    """Lime's default sampling and kernel, done for all examples at once."""

    def __init__(self, kernel: ExpKernel) -> None:
        self.kernel = kernel

    def draw(self, p: Problem) -> Tensor:
        return bernoulli(p)

    def weights(self, p: Problem, z: Tensor) -> Tensor:
        return self.kernel.batched(p.call.inputs, p.call.expanded_baselines(), p.groups, z, p.rows)


class LimeBase(PerturbationAttribution):
    """LIME's general framework (Ribeiro et al., 2016, https://arxiv.org/abs/1602.04938).

    Samples points around the input with ``perturb_func`` (in the interpretable space, mapped
    to inputs by ``from_interp_rep_transform``, or in the input space, mapped back by
    ``to_interp_rep_transform``), weights them by ``similarity_func``, evaluates the model on
    them in batches and fits ``interpretable_model`` (a :class:`~perspicio.models.Model`) to
    the outputs; ``attribute`` returns ``interpretable_model.representation()``. The user
    functions follow Captum's protocol: ``perturb_func(inputs, **kwargs)`` returns one sample
    (or is a generator of samples), the transforms and ``similarity_func(inputs,
    perturbed_inputs, interpretable_sample, **kwargs)`` take one sample, and every keyword
    argument of ``attribute`` is passed on to them.

    One surrogate is fitted for the whole input: with a batch of several examples,
    ``forward_func`` must return one value for the batch. :class:`Lime` fits one per example.

    Example:
        >>> import torch
        >>> from perspicio.attr import LimeBase
        >>> from perspicio.models import TorchLinearRegression
        >>> def interp_to_input(z, x, **kwargs):
        ...     return x * z
        >>> lime = LimeBase(
        ...     lambda x: x.sum(1), TorchLinearRegression(),
        ...     similarity_func=lambda x, xp, z, **kw: 1.0,
        ...     perturb_func=lambda x, **kw: torch.randint(0, 2, (1, 3)).float(),
        ...     perturb_interpretable_space=True,
        ...     from_interp_rep_transform=interp_to_input, to_interp_rep_transform=None)
        >>> _ = torch.manual_seed(0)
        >>> lime.attribute(torch.tensor([[1.0, 2.0, 3.0]]), n_samples=20).round()
        tensor([[1., 2., 3.]])
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        interpretable_model: Model,
        similarity_func: Callable[..., Any],
        perturb_func: Callable[..., Any],
        perturb_interpretable_space: bool,
        from_interp_rep_transform: Callable[..., Any] | None,
        to_interp_rep_transform: Callable[..., Any] | None,
    ) -> None:
        super().__init__(forward_func)
        if perturb_interpretable_space and from_interp_rep_transform is None:
            raise ArgumentError(
                "perturb_interpretable_space=True needs from_interp_rep_transform (to build "
                "model inputs from interpretable samples)"
            )
        if not perturb_interpretable_space and to_interp_rep_transform is None:
            raise ArgumentError(
                "perturb_interpretable_space=False needs to_interp_rep_transform (to map "
                "sampled inputs to the interpretable space)"
            )
        self.interpretable_model = interpretable_model
        self.similarity_func = similarity_func
        self.perturb_func = perturb_func
        self.perturb_interpretable_space = perturb_interpretable_space
        self.from_interp_rep_transform = from_interp_rep_transform
        self.to_interp_rep_transform = to_interp_rep_transform

    def attribute(
        self,
        inputs: TensorOrTensors,
        target: Any = None,
        additional_forward_args: Any = None,
        n_samples: int = 50,
        perturbations_per_eval: int = AUTO,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> Tensor:
        """Fit the interpretable model around ``inputs``; returns its representation.

        Args:
            n_samples: samples drawn (fewer if a generator ``perturb_func`` runs out).
            perturbations_per_eval: at most this many samples per forward pass. Left at its
                default (Captum's 1) it is chosen from a memory budget instead (same result).
            show_progress: show a progress bar.
            **kwargs: passed to ``perturb_func``, the transforms and ``similarity_func``.
        """
        return self._generic(
            wants_future(), inputs, target, additional_forward_args, n_samples, perturbations_per_eval,
            show_progress, kwargs,
        )  # fmt: skip

    attribute_future = future_of(attribute)

    def _generic(
        self,
        future: bool,
        inputs: Any,
        target: Any,
        args: Any,
        n_samples: int,
        per_eval: int,
        show_progress: bool,
        kwargs: dict[str, Any],
    ) -> Any:
        check_count(n_samples, "n_samples")
        check_per_eval(per_eval)
        call = build_call(inputs, target, args)
        samples = self._draw_user([(inputs, kwargs)], n_samples)
        plan = SamplePlan(samples, 1, whole=True)

        def finish(base: Tensor) -> Tensor:
            assert plan.y is not None
            fit_surrogate(self.interpretable_model, samples.interp, plan.y, samples.weights)
            return self.interpretable_model.representation()

        return execute(
            plan, model_evaluator(self.forward_func, call), call.inputs, finish, per_eval,
            future=future, show_progress=show_progress, desc=self.get_name(), count_base=False,
        )  # fmt: skip

    def _samples_of(
        self, inputs: Any, n_samples: int, kwargs: dict[str, Any]
    ) -> tuple[list[Tensor], list[Tensors], list[float]]:
        """Up to ``n_samples`` (interpretable sample, model input, weight) from the user's
        functions, one sample at a time (Captum's protocol)."""
        func = self.perturb_func
        gen: Iterator[Any] | None = (
            func(inputs, **kwargs) if inspect.isgeneratorfunction(func) else None
        )
        interps, model_inputs, weights = [], [], []
        for _ in range(n_samples):
            sample = func(inputs, **kwargs) if gen is None else next(gen, None)
            if sample is None:
                break
            if self.perturb_interpretable_space:
                assert self.from_interp_rep_transform is not None
                interp, model_in = sample, self.from_interp_rep_transform(sample, inputs, **kwargs)
            else:
                assert self.to_interp_rep_transform is not None
                interp, model_in = self.to_interp_rep_transform(sample, inputs, **kwargs), sample
            weights.append(float(torch.as_tensor(
                self.similarity_func(inputs, model_in, interp, **kwargs)
            ).reshape(-1)[0]))  # fmt: skip
            interps.append(torch.as_tensor(interp).reshape(1, -1))
            model_inputs.append(as_tensors(model_in, "perturbed inputs"))
        return interps, model_inputs, weights

    def _draw_user(self, units: list[tuple[Any, dict[str, Any]]], n_samples: int) -> Explicit:
        """Samples for each unit ``(inputs, kwargs)`` (one per surrogate), stacked per sample."""
        per_unit = [self._samples_of(inputs, n_samples, kw) for inputs, kw in units]
        count = min(len(u[0]) for u in per_unit)
        if count == 0:
            raise ArgumentError("perturb_func produced no samples")
        if count < n_samples:
            warnings.warn(
                f"perturb_func's generator stopped after {count} of n_samples={n_samples} "
                "samples: fitting on those",
                stacklevel=4,
            )
        device = as_tensors(units[0][0])[0].device
        for s in range(count):  # sample s of every example shares a forward pass
            _check_same_shapes([u[1][s] for u in per_unit])
        interp = torch.stack([torch.cat(u[0][:count]) for u in per_unit]).to(device)
        weights = torch.tensor([u[2][:count] for u in per_unit], device=device)
        stacked = [
            tuple(torch.cat(parts) for parts in zip(*(u[1][s] for u in per_unit)))
            for s in range(count)
        ]
        return Explicit(interp.to(torch.get_default_dtype()), stacked, weights)

    def has_convergence_delta(self) -> bool:
        return False

    @property
    def multiplies_by_inputs(self) -> bool:
        return False


def _check_same_shapes(model_inputs: list[Tensors]) -> None:
    """Several examples' perturbed inputs share forward passes, so their shapes must agree."""
    shapes = {tuple(tuple(t.shape[1:]) for t in ts) for ts in model_inputs}
    if len(shapes) > 1:
        raise ArgumentError(
            f"the perturbed inputs of different examples have different shapes ({sorted(shapes)[:2]}"
            "): attribute such inputs (e.g. texts of other lengths) one example at a time"
        )


class Lime(LimeBase):
    """LIME (Ribeiro et al., 2016, https://arxiv.org/abs/1602.04938), one surrogate per example.

    Interpretable features are the groups of ``feature_mask``; a sample switches each on (its
    input values) or off (the baseline). Defaults: ``interpretable_model`` is
    :class:`~perspicio.models.TorchLasso` ``(alpha=0.01)`` (scikit-learn's ``Lasso`` objective,
    fitted in torch; Captum's default is ``SkLearnLasso(alpha=0.01)``), ``similarity_func`` the
    exponential kernel on the cosine distance (:func:`get_exp_kernel_similarity_function`) and
    ``perturb_func`` uniformly random coalitions (:func:`default_perturb_func`). With these,
    all examples' samples are drawn, evaluated and fitted at once (see the module docstring),
    and one set of coalitions serves every example of the batch: each example's samples have
    the distribution of separate draws, and with the same seed an example gets the result it
    gets alone, whatever else is in the batch.

    Example:
        >>> import torch
        >>> from perspicio.attr import Lime
        >>> from perspicio.testing import BasicLinearModel
        >>> _ = torch.manual_seed(0)
        >>> lime = Lime(BasicLinearModel())
        >>> lime.attribute(torch.randn(2, 4), target=0, n_samples=50).shape
        torch.Size([2, 4])
    """

    needs_finite = False  # KernelShap: True (NaN or Inf inputs are rejected before any work)

    def __init__(
        self,
        forward_func: Callable[..., Any],
        interpretable_model: Model | None = None,
        similarity_func: Callable[..., Any] | None = None,
        perturb_func: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(
            forward_func,
            TorchLasso(alpha=0.01) if interpretable_model is None else interpretable_model,
            similarity_func or get_exp_kernel_similarity_function(),
            perturb_func or default_perturb_func,
            True,
            default_from_interp_rep_transform,
            None,
        )

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
        """Surrogate coefficients per example, spread over the inputs' shapes.

        Args:
            baselines: what switched-off features take: ``None`` (zeros), a number, a tensor
                broadcastable to the input (first dimension 1 or N), or a tuple, one per input.
            feature_mask: integer ids grouping scalars into interpretable features, one tensor
                per input, broadcastable to it (first dimension 1 or N); ids are shared across
                inputs and shifted to start at 0. ``None``: every scalar is a feature.
            n_samples: samples (model evaluations) per example.
            perturbations_per_eval: at most this many samples of the batch per forward pass.
                Left at its default (Captum's 1), chosen from a memory budget instead (same
                results; one per pass when the forward returns one value for the batch).
            return_input_shape: ``False`` returns the coefficients, ``(N, num_features)``.
            show_progress: show a progress bar.

        With several examples and a ``forward_func`` returning one value for the whole batch,
        a single surrogate is fitted for the batch (results have first dimension 1).
        """
        return self._lime(
            wants_future(), inputs, baselines, target, additional_forward_args, feature_mask, n_samples,
            perturbations_per_eval, return_input_shape, show_progress,
        )  # fmt: skip

    attribute_future = future_of(attribute)

    def _lime(
        self,
        future: bool,
        inputs: Any,
        baselines: Any,
        target: Any,
        args: Any,
        feature_mask: MaskType,
        n_samples: int,
        per_eval: int,
        return_input_shape: bool,
        show_progress: bool,
    ) -> Any:
        p = self._problem(
            future, inputs, baselines, target, args, feature_mask, n_samples, per_eval
        )
        defaults = self._defaults()
        samples = Coalitions(p, defaults.draw(p)) if defaults else self._draw_user(
            self._units(p), n_samples
        )  # fmt: skip
        plan = SamplePlan(samples, p.rows)

        def finish(base: Tensor) -> TensorOrTensors:
            assert plan.y is not None
            x, cols = samples.design()
            if isinstance(samples, Explicit):
                weights = samples.weights
            else:
                assert defaults is not None
                weights = defaults.weights(p, samples.z)
            coef = fit_surrogate(self.interpretable_model, x, plan.y, weights)
            return attributions(p, coef, cols, return_input_shape)

        return execute(
            plan, model_evaluator(self.forward_func, p.call), p.call.inputs, finish, per_eval,
            future=future, show_progress=show_progress, desc=self.get_name(), count_base=False,
        )  # fmt: skip

    def _problem(
        self,
        future: bool,
        inputs: Any,
        baselines: Any,
        target: Any,
        args: Any,
        feature_mask: MaskType,
        n_samples: int,
        per_eval: int,
    ) -> Problem:
        """Validate everything (before any model call) and find how many surrogates to fit."""
        check_count(n_samples, "n_samples")
        check_per_eval(per_eval)
        call = build_call(inputs, target, args, baselines, use_baselines=True)
        if self.needs_finite:
            assert call.baselines is not None
            check_finite(call.inputs, "inputs", self.get_name())
            check_finite(call.baselines, "baselines", self.get_name())
        masks, width = construct_feature_mask(feature_mask, call.inputs)
        groups = FeatureGroups.build(masks, call.inputs)
        rows = count_surrogates(self.forward_func, call, future)
        return Problem(call, masks, groups, width, n_samples, rows)

    def _defaults(self) -> Sampler | None:
        """The batched sampler when the default functions are in use, else ``None``."""
        if (
            self.perturb_func is default_perturb_func
            and self.perturb_interpretable_space
            and self.from_interp_rep_transform is default_from_interp_rep_transform
            and isinstance(self.similarity_func, ExpKernel)
        ):
            return _LimeSampler(self.similarity_func)
        return None

    def _units(self, p: Problem) -> list[tuple[Any, dict[str, Any]]]:
        """``(inputs, kwargs)`` for each surrogate, in the user's form (Captum's protocol)."""
        n, form = p.call.batch_size, p.call.restore
        units = []
        for i in [None] if p.rows == 1 else range(n):
            pick = (lambda v: v) if i is None else functools.partial(example_slice, i=i, n=n)
            kwargs = {
                "baselines": form([pick(b) for b in p.baselines]),
                "feature_mask": form([pick(m) for m in p.masks]),
                "num_interp_features": p.width,
                **self._extra_kwargs(p),
            }
            units.append((form([pick(x) for x in p.call.inputs]), kwargs))
        return units

    def _extra_kwargs(self, p: Problem) -> dict[str, Any]:
        return {}
