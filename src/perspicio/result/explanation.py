"""The result object: attributions together with what is needed to read and reuse them.

``attribute()`` keeps returning plain tensors; :func:`explain` (or :meth:`Explanation.of`)
is the opt-in way to get attributions with the model's scores, the base value, the feature
names and the method's arguments in one object that slices, aggregates over a dataset,
plots, and saves to a safetensors file that loads back bit for bit (no pickle).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import as_tensors, batch_size_of, build_call, normalize_baselines
from perspicio._core.forward import scores
from perspicio._core.validate import ArgumentError

_FORMAT = "perspicio.explanation/1"


@dataclass(frozen=True)
class Explanation:
    """Attributions of a batch (or a whole dataset) with their context.

    Attributes:
        values: the attributions, one tensor per input, each ``(N, *input.shape[1:])``.
        data: the inputs that were explained (same shapes), or ``None`` when not kept.
        output: the explained score of each example, ``f(x)`` at the target, ``(N,)``.
        base_value: the same score at the baseline, ``(N,)``, where the method has one.
        feature_names: one name per scalar feature of the flattened inputs, or ``None``.
        method: the attribution method's class name.
        arguments: the JSON-serialisable arguments the method was called with.
        target: the explained target per example, ``(N,)`` or ``(N, k)``, or ``None``.
    """

    values: tuple[Tensor, ...]
    data: tuple[Tensor, ...] | None = None
    output: Tensor | None = None
    base_value: Tensor | None = None
    feature_names: tuple[str, ...] | None = None
    method: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    target: Tensor | None = None

    def __post_init__(self) -> None:
        values = as_tensors(self.values, "values")
        n = batch_size_of(values, "values")
        object.__setattr__(self, "values", values)
        if self.data is not None:
            data = as_tensors(self.data, "data")
            if [d.shape for d in data] != [v.shape for v in values]:
                raise ArgumentError(
                    f"data shapes {[tuple(d.shape) for d in data]} differ from the attributions' "
                    f"{[tuple(v.shape) for v in values]}"
                )
            object.__setattr__(self, "data", data)
        for name in ("output", "base_value", "target"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, Tensor) or value.shape[:1] != (n,)):
                raise ArgumentError(f"{name} must be a tensor with {n} rows, got {value!r}")
        if self.feature_names is not None:
            names = tuple(str(s) for s in self.feature_names)
            if len(names) != self.n_features:
                raise ArgumentError(
                    f"feature_names has {len(names)} names for {self.n_features} features"
                )
            object.__setattr__(self, "feature_names", names)

    @classmethod
    def of(
        cls,
        method: Any,
        inputs: Any,
        *,
        feature_names: Sequence[str] | None = None,
        keep_data: bool = True,
        **kwargs: Any,
    ) -> Explanation:
        """Run ``method.attribute(inputs, **kwargs)`` and wrap the result.

        The model's score at the target (and at the baselines, when given) is evaluated once
        more, without gradients; a ``(attributions, delta)`` return keeps the attributions.
        """
        attr = method.attribute(inputs, **kwargs)
        if kwargs.get("return_convergence_delta"):
            attr = attr[0]
        call = build_call(inputs, kwargs.get("target"), kwargs.get("additional_forward_args"))
        output, base = _scores(method, call, kwargs)
        layer = getattr(method, "layer", None) is not None  # values are the layer's, not inputs'
        target = kwargs.get("target")
        return cls(
            values=as_tensors(attr, "attributions"),
            data=tuple(x.detach() for x in call.inputs) if keep_data and not layer else None,
            output=output,
            base_value=base,
            feature_names=tuple(feature_names) if feature_names is not None else None,
            method=type(method).__name__,
            arguments=_jsonable(kwargs),
            target=_target_rows(target, call.batch_size),
        )

    # -- shape and slicing ---------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.values[0].shape[0])

    @property
    def n_features(self) -> int:
        return (
            sum(v[0].numel() for v in self.values)
            if len(self)
            else sum(int(torch.Size(v.shape[1:]).numel()) for v in self.values)
        )

    def __getitem__(self, rows: int | slice | Sequence[int] | Tensor) -> Explanation:
        """The explanation of some rows (an int keeps a batch of one)."""
        if isinstance(rows, int):
            rows = slice(rows, rows + 1 if rows != -1 else None)
        index: slice | Tensor = (
            rows if isinstance(rows, slice | Tensor) else torch.as_tensor(rows, dtype=torch.long)
        )

        def pick(t: Tensor) -> Tensor:
            return t[index]

        def maybe(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[index]

        return replace(
            self,
            values=tuple(pick(v) for v in self.values),
            data=None if self.data is None else tuple(pick(d) for d in self.data),
            output=maybe(self.output),
            base_value=maybe(self.base_value),
            target=maybe(self.target),
        )

    def flat(self) -> Tensor:
        """The attributions as an ``(N, n_features)`` matrix (inputs concatenated)."""
        return torch.cat([v.reshape(len(self), -1) for v in self.values], dim=1)

    def flat_data(self) -> Tensor | None:
        if self.data is None:
            return None
        return torch.cat([d.reshape(len(self), -1) for d in self.data], dim=1)

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names, or ``x{input}[{index}]`` when none were given."""
        if self.feature_names is not None:
            return self.feature_names
        out = []
        for i, v in enumerate(self.values):
            for j in range(int(torch.Size(v.shape[1:]).numel())):
                out.append(f"x{i}[{j}]" if len(self.values) > 1 else f"x[{j}]")
        return tuple(out)

    # -- aggregation ---------------------------------------------------------------------
    def mean_abs(self) -> Tensor:
        """Global importance: the mean absolute attribution of each feature, ``(n_features,)``."""
        return self.flat().abs().mean(0)

    def mean(self) -> Tensor:
        """The mean attribution of each feature over the rows, ``(n_features,)``."""
        return self.flat().mean(0)

    def top_features(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` features with the largest mean absolute attribution, largest first."""
        imp = self.mean_abs()
        order = torch.argsort(imp, descending=True)[:k]
        return [(self.names[i], float(imp[i])) for i in order.tolist()]

    @classmethod
    def concat(cls, parts: Sequence[Explanation]) -> Explanation:
        """Rows of several explanations of the same method and inputs, in order."""
        if not parts:
            raise ArgumentError("parts must hold at least one Explanation")
        first = parts[0]

        def cat(get: Any) -> Any:
            items = [get(p) for p in parts]
            if any(i is None for i in items):
                return None
            if isinstance(items[0], tuple):
                return tuple(torch.cat(col) for col in zip(*items))
            return torch.cat(items)

        return replace(
            first,
            values=cat(lambda p: p.values),
            data=cat(lambda p: p.data),
            output=cat(lambda p: p.output),
            base_value=cat(lambda p: p.base_value),
            target=cat(lambda p: p.target),
        )

    # -- plots (see :mod:`perspicio.result.plots`) -------------------------------------------
    def plot_bar(self, k: int = 10, ax: Any = None) -> Any:
        """Bars of the ``k`` largest mean absolute attributions."""
        from perspicio.result import plots

        return plots.bar(self, k, ax)

    def plot_beeswarm(self, k: int = 10, ax: Any = None) -> Any:
        """Each row's attribution of the ``k`` most important features."""
        from perspicio.result import plots

        return plots.beeswarm(self, k, ax)

    def plot_waterfall(self, row: int = 0, k: int = 10, ax: Any = None) -> Any:
        """From the base value to the output of one example."""
        from perspicio.result import plots

        return plots.waterfall(self, row, k, ax)

    def plot_image(self, row: int = 0, input_index: int = 0, **kwargs: Any) -> Any:
        """Heat map of one example's image attribution, over the image when kept."""
        from perspicio.result import plots

        return plots.image(self, row, input_index, **kwargs)

    def plot_text(self, row: int = 0, tokens: list[str] | None = None) -> Any:
        """One example's tokens shaded by attribution (escaped HTML)."""
        from perspicio.result import plots

        return plots.text(self, row, tokens)

    # -- storage -------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write a safetensors file (tensors bit for bit, the rest as JSON metadata)."""
        from safetensors.torch import save_file

        tensors: dict[str, Tensor] = {}
        for i, v in enumerate(self.values):
            tensors[f"values.{i}"] = v.detach().contiguous().cpu()
        for i, d in enumerate(self.data or ()):
            tensors[f"data.{i}"] = d.detach().contiguous().cpu()
        for name in ("output", "base_value", "target"):
            value = getattr(self, name)
            if value is not None:
                tensors[name] = value.detach().contiguous().cpu()
        meta = {
            "format": _FORMAT,
            "method": self.method,
            "arguments": json.dumps(self.arguments),
            "feature_names": json.dumps(self.feature_names),
        }
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> Explanation:
        """Read a file written by :meth:`save`."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != _FORMAT:
                raise ArgumentError(f"{path} is not a perspicio explanation file")
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118

        def group(prefix: str) -> tuple[Tensor, ...] | None:
            keys = sorted(
                (k for k in tensors if k.startswith(prefix + ".")),
                key=lambda k: int(k.split(".")[1]),
            )
            return tuple(tensors[k] for k in keys) or None

        names = json.loads(meta["feature_names"])
        return cls(
            values=group("values") or (),
            data=group("data"),
            output=tensors.get("output"),
            base_value=tensors.get("base_value"),
            feature_names=tuple(names) if names is not None else None,
            method=meta.get("method", ""),
            arguments=json.loads(meta.get("arguments", "{}")),
            target=tensors.get("target"),
        )


def explain(method: Any, inputs: Any, **kwargs: Any) -> Explanation:
    """``Explanation.of(method, inputs, **kwargs)``: attributions with their context.

    Example:
        >>> import torch
        >>> from perspicio.attr import IntegratedGradients
        >>> model = torch.nn.Linear(3, 2)
        >>> e = explain(IntegratedGradients(model), torch.ones(4, 3), target=1,
        ...             feature_names=["a", "b", "c"])
        >>> len(e), e.n_features, e.method
        (4, 3, 'IntegratedGradients')
        >>> bool(torch.allclose(e.flat().sum(1), e.output - e.base_value, atol=1e-5))
        True
    """
    return Explanation.of(method, inputs, **kwargs)


def _scores(method: Any, call: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """The target score at the inputs and at the baselines (``None`` where there is none).

    Layer and neuron methods explain something other than the model's output at the inputs,
    so they get neither; a method without ``baselines`` gets no base value, and neither does a
    distribution of baselines that does not broadcast to the inputs (GradientShap's).
    """
    forward = getattr(method, "forward_func", None)
    if forward is None or getattr(method, "layer", None) is not None:
        return None, None
    n = call.batch_size
    with torch.no_grad():
        output = scores(forward, call).detach().reshape(n, -1)[:, 0]
        if "baselines" not in inspect.signature(method.attribute).parameters:
            return output, None
        try:
            starts = replace(
                call, baselines=normalize_baselines(kwargs.get("baselines"), call.inputs)
            ).expanded_baselines()
        except (ArgumentError, TypeError, RuntimeError):
            return output, None
        base = scores(forward, call, starts).detach().reshape(n, -1)[:, 0]
    return output, base


def _target_rows(target: Any, n: int) -> Tensor | None:
    if target is None or (callable(target) and not isinstance(target, Tensor)):
        return None
    t = torch.as_tensor(target)
    if t.dim() == 0:
        return t.expand(n).clone()
    if t.dim() == 1 and isinstance(target, tuple):
        return t.expand(n, -1).clone()
    return t if t.shape[0] == n else None


def _jsonable(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments that JSON can hold (tensors become a short description)."""
    out: dict[str, Any] = {}
    for k, v in kwargs.items():
        if isinstance(v, bool | int | float | str) or v is None:
            out[k] = v
        elif isinstance(v, Tensor):
            out[k] = v.tolist() if v.numel() <= 64 else f"tensor{tuple(v.shape)}"
        elif isinstance(v, list | tuple) and all(isinstance(i, int | float | str) for i in v):
            out[k] = list(v)
        else:
            out[k] = type(v).__name__
    return out
