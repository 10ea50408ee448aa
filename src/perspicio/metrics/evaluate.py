"""Score several attribution methods on several metrics: a small table, no pandas needed."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from perspicio._core.attribution import Attribution
from perspicio._core.call import BaselineType, TensorOrTensors, build_call
from perspicio._core.validate import ArgumentError
from perspicio.metrics.complexity import complexity, sparseness
from perspicio.metrics.faithfulness import deletion_curve, faithfulness_correlation, insertion_curve
from perspicio.metrics.infidelity import infidelity, infidelity_perturb_func_decorator
from perspicio.metrics.sensitivity import sensitivity_avg, sensitivity_max
from perspicio.perturbation.progress import progress


@dataclass(frozen=True)
class MetricInput:
    """Everything a metric may need about one method on one batch.

    Attributes:
        forward_func: the model.
        inputs: the examples (the user's form).
        attributions: the method's attributions of ``inputs``.
        explain: ``explain(inputs, **explain_kwargs)`` recomputes attributions (for
            robustness metrics, which perturb the inputs).
        explain_kwargs: ``target``, ``additional_forward_args`` and the method's own options.
        target, additional_forward_args: as given to :func:`evaluate`.
        baselines: the value removed features take in the faithfulness metrics.
        multiplies_by_inputs: whether the method's attributions are global (x input).
        max_examples_per_batch: the metrics' batching knob.
    """

    forward_func: Callable[..., Any]
    inputs: TensorOrTensors
    attributions: TensorOrTensors
    explain: Callable[..., TensorOrTensors]
    explain_kwargs: dict[str, Any] = field(default_factory=dict)
    target: Any = None
    additional_forward_args: Any = None
    baselines: BaselineType = None
    multiplies_by_inputs: bool = True
    max_examples_per_batch: int | None = None


def _model_args(m: MetricInput) -> dict[str, Any]:
    return {
        "baselines": m.baselines,
        "additional_forward_args": m.additional_forward_args,
        "target": m.target,
        "max_examples_per_batch": m.max_examples_per_batch,
    }


def _infidelity(m: MetricInput) -> Tensor:
    """Infidelity with removal of a random 10% of the features to the baseline, normalised.

    Global attributions see the binary removal mask as the perturbation, local ones the change
    of the inputs (Yeh et al.'s recommendation for each kind).
    """

    @infidelity_perturb_func_decorator(m.multiplies_by_inputs)
    def remove(inputs: Any, baselines: Any = None) -> Any:
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        bs = baselines if isinstance(baselines, tuple) else (baselines,) * len(xs)
        out = tuple(
            torch.where(torch.rand_like(x) < 0.1, x * 0 + (0.0 if b is None else b), x)
            for x, b in zip(xs, bs)
        )
        return out if isinstance(inputs, tuple) else out[0]

    kw = _model_args(m)
    return infidelity(m.forward_func, remove, m.inputs, m.attributions, normalize=True, **kw)


def _sensitivity(fn: Callable[..., Tensor]) -> Callable[[MetricInput], Tensor]:
    def metric(m: MetricInput) -> Tensor:
        return fn(
            m.explain,
            m.inputs,
            max_examples_per_batch=m.max_examples_per_batch,
            **m.explain_kwargs,
        )

    return metric


METRICS: dict[str, Callable[[MetricInput], Tensor]] = {
    "deletion_auc": lambda m: (
        deletion_curve(m.forward_func, m.inputs, m.attributions, **_model_args(m)).auc
    ),
    "insertion_auc": lambda m: (
        insertion_curve(m.forward_func, m.inputs, m.attributions, **_model_args(m)).auc
    ),
    "faithfulness_correlation": lambda m: faithfulness_correlation(
        m.forward_func, m.inputs, m.attributions, **_model_args(m)
    ),
    "infidelity": _infidelity,
    "sensitivity_max": _sensitivity(sensitivity_max),
    "sensitivity_avg": _sensitivity(sensitivity_avg),
    "sparseness": lambda m: sparseness(m.attributions),
    "complexity": lambda m: complexity(m.attributions),
}
"""The built-in metrics of :func:`evaluate`, by name."""

HIGHER_IS_BETTER: dict[str, bool] = {
    "deletion_auc": False,
    "insertion_auc": True,
    "faithfulness_correlation": True,
    "infidelity": False,
    "sensitivity_max": False,
    "sensitivity_avg": False,
    "sparseness": True,
    "complexity": False,
}
"""For each built-in metric, whether a larger value means a better explanation."""


def _resolve(
    metrics: Sequence[str] | Mapping[str, Callable[[MetricInput], Tensor]],
) -> dict[str, Any]:
    if isinstance(metrics, Mapping):
        items: dict[str, Any] = dict(metrics)
    else:
        items = {name: None for name in ([metrics] if isinstance(metrics, str) else metrics)}
    for name, fn in list(items.items()):
        if fn is None:
            if name not in METRICS:
                raise ArgumentError(
                    f"unknown metric {name!r}: built-in metrics are {sorted(METRICS)}"
                )
            items[name] = METRICS[name]
        elif not callable(fn):
            raise TypeError(f"metric {name!r} must be a callable (MetricInput) -> (N,) scores")
    if not items:
        raise ArgumentError("give at least one metric")
    return items


def evaluate(
    forward_func: Callable[..., Any],
    methods: Mapping[str, Attribution | Callable[..., TensorOrTensors]],
    inputs: TensorOrTensors,
    target: Any = None,
    additional_forward_args: Any = None,
    baselines: BaselineType = None,
    metrics: Sequence[str] | Mapping[str, Callable[[MetricInput], Tensor]] = (
        "deletion_auc",
        "infidelity",
        "sensitivity_max",
    ),
    attribute_kwargs: Mapping[str, dict[str, Any]] | None = None,
    max_examples_per_batch: int | None = None,
    show_progress: bool = False,
) -> list[dict[str, Any]]:
    """Mean score of each attribution method on each metric, one row per method.

    Args:
        methods: ``{name: attribution object or function}``; a function is called like
            ``attribute``: ``f(inputs, target=..., additional_forward_args=..., **kwargs)``.
        baselines: the value removed features take in the faithfulness metrics.
        metrics: built-in names (see :data:`METRICS` and :data:`HIGHER_IS_BETTER`) or
            ``{name: f(MetricInput) -> (N,) scores}``.
        attribute_kwargs: ``{method name: extra attribute arguments}`` (e.g. ``n_steps``).
        show_progress: a progress bar over the (method, metric) pairs (tqdm when installed).

    Returns:
        ``[{"method": name, metric: mean over the examples, ...}, ...]`` in the order of
        ``methods``; non-finite per-example values are left out of the means.

    Example:
        >>> import torch
        >>> from perspicio.attr import InputXGradient, Saliency
        >>> from perspicio.metrics import evaluate
        >>> from perspicio.testing import ReLUMLP
        >>> model = ReLUMLP()
        >>> methods = {"saliency": Saliency(model), "ixg": InputXGradient(model)}
        >>> rows = evaluate(model, methods, torch.randn(4, 6), target=0,
        ...                 metrics=["deletion_auc", "sparseness"])
        >>> [row["method"] for row in rows], sorted(rows[0])
        (['saliency', 'ixg'], ['deletion_auc', 'method', 'sparseness'])
    """
    chosen = _resolve(metrics)
    build_call(inputs, target, additional_forward_args, baselines, use_baselines=True)
    extra = dict(attribute_kwargs or {})
    unknown = set(extra) - set(methods)
    if unknown:
        raise ArgumentError(f"attribute_kwargs names methods that are not given: {sorted(unknown)}")
    pairs = [(name, metric) for name in methods for metric in chosen]
    rows: dict[str, dict[str, Any]] = {name: {"method": name} for name in methods}
    shared = {
        "forward_func": forward_func,
        "target": target,
        "additional_forward_args": additional_forward_args,
        "baselines": baselines,
        "max_examples_per_batch": max_examples_per_batch,
    }
    current: tuple[str, MetricInput] | None = None
    label = f"evaluate: {len(methods)} methods x {len(chosen)} metrics"
    with progress(label, len(pairs), show_progress, unit="score") as bar:
        for name, metric in pairs:
            if current is None or current[0] != name:  # attribute once per method
                current = (
                    name,
                    _metric_input(methods[name], name, inputs, extra.get(name), shared),
                )
            values = chosen[metric](current[1]).detach().reshape(-1).double()
            finite = values[torch.isfinite(values)]
            rows[name][metric] = float(finite.mean()) if finite.numel() else math.nan
            bar.update(1)
    return list(rows.values())


def _metric_input(
    method: Any,
    name: str,
    inputs: TensorOrTensors,
    kwargs: dict[str, Any] | None,
    shared: dict[str, Any],
) -> MetricInput:
    explain = method.attribute if isinstance(method, Attribution) else method
    if not callable(explain):
        raise TypeError(f"method {name!r} must be an Attribution object or a callable")
    explain_kwargs = {
        "target": shared["target"],
        "additional_forward_args": shared["additional_forward_args"],
        **(kwargs or {}),
    }
    return MetricInput(
        inputs=inputs,
        attributions=explain(inputs, **explain_kwargs),
        explain=explain,
        explain_kwargs=explain_kwargs,
        multiplies_by_inputs=getattr(method, "multiplies_by_inputs", True),
        **shared,
    )


def format_table(
    rows: Sequence[Mapping[str, Any]], sort_by: str | None = None, digits: int = 4
) -> str:
    """The rows of :func:`evaluate` as a Markdown table, best first when ``sort_by`` is given.

    Sorting uses :data:`HIGHER_IS_BETTER` for built-in metrics (custom ones: higher first),
    and adds a ``rank`` column.

    Example:
        >>> from perspicio.metrics import format_table
        >>> print(format_table([{"method": "a", "infidelity": 0.5},
        ...                     {"method": "b", "infidelity": 0.25}], sort_by="infidelity"))
        | rank | method | infidelity |
        |---|---|---|
        | 1 | b | 0.2500 |
        | 2 | a | 0.5000 |
    """
    columns = [c for c in (rows[0] if rows else {}) if c != "method"]
    ordered = list(rows)
    if sort_by is not None:
        if sort_by not in columns:
            raise ArgumentError(f"sort_by must be one of the metrics {columns}, got {sort_by!r}")
        sign = -1.0 if HIGHER_IS_BETTER.get(sort_by, True) else 1.0
        ordered.sort(key=lambda r: math.inf if math.isnan(r[sort_by]) else sign * r[sort_by])
    head = (["rank"] if sort_by else []) + ["method", *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, row in enumerate(ordered, 1):
        cells = [str(i)] if sort_by else []
        cells.append(str(row["method"]))
        cells += [
            f"{row[c]:.{digits}f}" if isinstance(row[c], float) else str(row[c]) for c in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
