"""The explorer's request handlers, shared by the web server and the notebook widget.

:class:`Engine` answers the three requests (config, fetch, re-attribute) from validated
pydantic models and raises :class:`~perspicio.insights.store.InsightsError` for anything it
refuses. It is safe to call from several threads: reading the dataset is serialised, and each
model is used by one attribution at a time (methods install hooks on it).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from perspicio.insights import schemas as s
from perspicio.insights.attribution import MethodNotApplicable, run_method
from perspicio.insights.features import BaseFeature
from perspicio.insights.methods import (
    DEFAULT_METHOD,
    ArgumentError,
    MethodSpec,
    available_methods,
    tunnel_bases,
)
from perspicio.insights.store import ExampleStore, InsightsError, Record, apply_transforms

SCAN_LIMIT = 2048  # examples looked at per fetch before answering with what matched


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` as strict JSON: non-finite floats become null, tensors and arrays lists.

    A custom feature may return anything from ``visualize``; what JSON cannot hold is shown
    as its ``str``.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > 32:
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, Tensor | np.ndarray | np.generic):
        data = value.detach().cpu().tolist() if isinstance(value, Tensor) else value.tolist()
        return json_safe(data, depth + 1)
    return str(value)


class Engine:
    """Predictions, filtering and attribution for an :class:`AttributionVisualizer`.

    Args:
        models: The models, shown side by side.
        classes: Class names, by output index.
        features: One feature per model input.
        dataset: An iterable of batches.
        score_func: Applied to model outputs to give the shown scores (e.g. softmax).
        use_label_for_attr: Explain the true label (else the top prediction).
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        classes: Sequence[str],
        features: Sequence[BaseFeature],
        dataset: Iterable[Any],
        score_func: Callable[[Tensor], Tensor] | None,
        use_label_for_attr: bool,
    ) -> None:
        self.models = list(models)
        self.classes = [str(c) for c in classes]
        self.features = list(features)
        self.score_func = score_func
        self.use_label_for_attr = use_label_for_attr
        self.store = ExampleStore(dataset, self.features, self._score_batch)
        self._model_locks = [threading.Lock() for _ in self.models]
        names = [type(m).__name__ for m in self.models]
        self.model_names = [
            f"{n} #{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)
        ]

    # -- requests ---------------------------------------------------------------------------

    def config(self) -> s.ConfigResponse:
        """Classes, models, features and the available methods with their arguments."""
        methods = available_methods()
        infos = []
        for spec in methods.values():
            info = spec.describe()
            if spec.kind == "tunnel":
                bases = tunnel_bases(methods)
                if not bases:
                    continue
                base_arg = info["args"][0]
                base_arg["choices"] = list(bases)
                base_arg["default"] = (
                    base_arg["default"] if base_arg["default"] in bases else bases[0]
                )
            infos.append(s.MethodInfo.model_validate(info))
        names = [m.name for m in infos]
        return s.ConfigResponse(
            classes=self.classes,
            models=self.model_names,
            features=[
                s.FeatureInfo(name=f.name, type=f.visualization_type()) for f in self.features
            ],
            methods=infos,
            selected_method=DEFAULT_METHOD if DEFAULT_METHOD in names else next(iter(names), None),
            use_label_for_attr=self.use_label_for_attr,
        )

    def fetch(self, req: s.FetchRequest) -> s.FetchResponse:
        """The next ``count`` examples from ``start`` that pass the filters, attributed."""
        spec, args = self.method(req.method, req.arguments)
        wanted = self._class_filter(req.classes)
        if req.start > self.store.loaded + SCAN_LIMIT:  # bound the reading one request causes
            raise InsightsError(
                422,
                f"start {req.start} is too far past the {self.store.loaded} examples read so "
                f"far; fetch in steps of at most {SCAN_LIMIT}",
            )
        if req.start > 0 and self.store.get(req.start - 1) is None:
            raise InsightsError(
                422,
                f"start {req.start} is past the end of the dataset ({self.store.loaded} examples)",
            )
        found: list[Record] = []
        position, scanned = req.start, 0
        while len(found) < req.count and scanned < SCAN_LIMIT:
            record = self.store.get(position)
            if record is None:
                break
            position, scanned = position + 1, scanned + 1
            if self._keep(record, wanted, req.instance_type):
                found.append(record)
        more = self.store.get(position) is not None
        examples = [self._example(r, spec, args, req.top_k) for r in found]
        return s.FetchResponse(
            examples=examples, next_start=position if more else None, scanned=scanned
        )

    def reattribute(self, req: s.ReattributeRequest) -> s.ReattributeResponse:
        """One example explained again, for ``req.target`` with model ``req.model``."""
        spec, args = self.method(req.method, req.arguments)
        if req.model >= len(self.models):
            raise InsightsError(
                422, f"model {req.model} is out of range (0..{len(self.models) - 1})"
            )
        record = self.store.get(req.example)
        if record is None:
            raise InsightsError(
                422, f"example {req.example} is past the end of the dataset ({self.store.loaded})"
            )
        n_out = record.scores[req.model].shape[0]
        if req.target >= n_out:
            raise InsightsError(422, f"target {req.target} is out of range (0..{n_out - 1})")
        view = self._model_view(record, req.model, req.target, spec, args, req.top_k)
        return s.ReattributeResponse(example=record.index, view=view)

    # -- pieces -----------------------------------------------------------------------------

    def method(self, name: str | None, arguments: dict[str, Any]) -> tuple[MethodSpec, dict]:
        """The requested method (or the default) and its validated arguments."""
        methods = available_methods()
        if not methods:
            raise InsightsError(422, "no attribution method is available in perspicio.attr")
        if name is None:
            name = DEFAULT_METHOD if DEFAULT_METHOD in methods else next(iter(methods))
        spec = methods.get(name)
        if spec is None:
            raise InsightsError(
                422, f"unknown method {name!r}; available: {', '.join(methods)}", list(methods)
            )
        try:
            args = spec.validate(arguments)
        except ArgumentError as exc:
            raise InsightsError(422, str(exc)) from exc
        if spec.kind == "tunnel" and args["base"] not in tunnel_bases(methods):
            raise InsightsError(422, f"NoiseTunnel: base method {args['base']!r} is not available")
        return spec, args

    def _class_filter(self, names: list[str]) -> set[int] | None:
        if not names:
            return None
        index = {n: i for i, n in enumerate(self.classes)}
        unknown = [n for n in names if n not in index]
        if unknown:
            raise InsightsError(422, f"unknown class name(s): {unknown[:10]}")
        return {index[n] for n in names}

    def _keep(self, record: Record, wanted: set[int] | None, instance_type: str) -> bool:
        tops = [int(sc.argmax()) for sc in record.scores]
        if wanted is not None and record.label not in wanted and not wanted.intersection(tops):
            return False
        if instance_type == "all":
            return True
        if record.label is None:
            return False
        hits = [t == record.label for t in tops]
        return any(hits) if instance_type == "correct" else not all(hits)

    def _score_batch(self, inputs: tuple[Tensor, ...], extra: tuple | None) -> list[Tensor]:
        out = []
        for model, lock in zip(self.models, self._model_locks):
            with lock:
                raw = model(*inputs, *(extra or ()))
            scores = self.score_func(raw) if self.score_func is not None else raw
            if not isinstance(scores, Tensor) or scores.dim() != 2:
                shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores)
                raise InsightsError(422, f"scores must be (batch, classes), got {shape}")
            out.append(scores.detach().to("cpu", torch.float32))
        return out

    def _class(self, index: int) -> s.ClassRef:
        name = self.classes[index] if 0 <= index < len(self.classes) else str(index)
        return s.ClassRef(index=index, name=name)

    def _example(self, record: Record, spec: MethodSpec, args: dict, top_k: int) -> s.ExampleView:
        views = []
        for m in range(len(self.models)):
            top = int(record.scores[m].argmax())
            use_label = self.use_label_for_attr and record.label is not None
            target = record.label if use_label and record.label is not None else top
            views.append(self._model_view(record, m, target, spec, args, top_k))
        label = None if record.label is None else self._class(record.label)
        return s.ExampleView(index=record.index, label=label, models=views)

    def _model_view(
        self, record: Record, m: int, target: int, spec: MethodSpec, args: dict, top_k: int
    ) -> s.ModelView:
        scores = record.scores[m]
        values, indices = torch.topk(scores, min(top_k, scores.shape[0]))
        predictions = [
            s.Prediction(index=int(i), name=self._class(int(i)).name, score=json_safe(float(v)))
            for v, i in zip(values, indices)
        ]
        correct = None if record.label is None else int(indices[0]) == record.label
        attributions = self._attribute(record, m, target, spec, args)
        return s.ModelView(
            model=m,
            model_name=self.model_names[m],
            predictions=predictions,
            target=self._class(target),
            correct=correct,
            method=spec.name,
            features=self._feature_views(record, attributions),
        )

    def _attribute(
        self, record: Record, m: int, target: int, spec: MethodSpec, args: dict
    ) -> tuple[Tensor, ...]:
        try:
            inputs = tuple(
                apply_transforms(f.input_transforms, x) for f, x in zip(self.features, record.data)
            )
            baselines = self._baselines(inputs)
            with self._model_locks[m]:
                return run_method(
                    spec, args, self.models[m], inputs, baselines, target, record.extra
                )
        except (ArgumentError, MethodNotApplicable) as exc:
            raise InsightsError(422, str(exc)) from exc
        except Exception as exc:  # the user's model, transforms or a method refused the inputs
            raise InsightsError(
                422, f"{spec.name} failed on {self.model_names[m]}: {type(exc).__name__}: {exc}"
            ) from exc

    def _baselines(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
        """Per input, the outputs of its baseline transforms stacked (zeros where it has none)."""
        count = max(len(f.baseline_transforms) for f in self.features)
        if count == 0:
            return None
        stacks = []
        for feature, x in zip(self.features, inputs):
            made = [fn(x) for fn in feature.baseline_transforms] or [torch.zeros_like(x)]
            made = [made[k % len(made)] for k in range(count)]  # same count for every input
            made = [torch.as_tensor(b, dtype=x.dtype, device=x.device).expand_as(x) for b in made]
            stacks.append(torch.cat(made))
        return tuple(stacks)

    def _feature_views(
        self, record: Record, attributions: tuple[Tensor, ...]
    ) -> list[s.FeatureView]:
        totals = [float(a.detach().abs().sum()) for a in attributions]
        grand = sum(totals)
        views = []
        for feature, attr, data, total in zip(self.features, attributions, record.data, totals):
            frac = total / grand if grand > 0 else 0.0
            try:
                out = feature.visualize(attr.detach().cpu(), data.detach().cpu(), frac)
            except Exception as exc:  # a custom feature's bug is reported, not fatal
                raise InsightsError(
                    422, f"feature {feature.name!r} could not be drawn: {type(exc).__name__}: {exc}"
                ) from exc
            views.append(
                s.FeatureView(
                    name=str(out.name),
                    type=str(out.type),
                    contribution=json_safe(float(out.contribution)) or 0.0,
                    base=json_safe(out.base),
                    modified=json_safe(out.modified),
                )
            )
        return views
