"""The explorer's request handlers, shared by the web server and the notebook widget.

:class:`Engine` answers the requests (config, fetch, re-attribute, and both as background
jobs) from validated pydantic models and raises
:class:`~perspicio.insights.store.InsightsError` for anything it refuses. It is safe to call
from several threads: reading the dataset is serialised, and each model is used by one
attribution at a time (methods install hooks on it). Fetches and re-attributions always run as
cancellable jobs (:mod:`perspicio.insights.jobs`); the plain ``fetch`` and ``reattribute``
wait for theirs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from perspicio.insights import plan
from perspicio.insights import schemas as s
from perspicio.insights.attribution import (
    MethodNotApplicable,
    method_kwargs,
    not_applicable,
    run_method,
)
from perspicio.insights.features import BaseFeature
from perspicio.insights.jobs import Cancelled, Job, JobManager, Watched
from perspicio.insights.methods import (
    DEFAULT_METHOD,
    ArgumentError,
    MethodSpec,
    available_methods,
    tunnel_bases,
)
from perspicio.insights.schemas import json_safe
from perspicio.insights.store import ExampleStore, InsightsError, Record, apply_transforms

SCAN_LIMIT = 2048  # how far past the examples read so far a fetch may start
SLOW_SECONDS = 60.0  # estimated job time above which the user is asked to confirm


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
        self.jobs = JobManager()
        self._row_seconds: float | None = None  # measured time of one model input
        names = [type(m).__name__ for m in self.models]
        self.model_names = [
            f"{n} #{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)
        ]

    # -- requests ---------------------------------------------------------------------------

    def config(self) -> s.ConfigResponse:
        """Classes, models, features and the available methods with their arguments.

        A method that cannot explain some model (Grad-CAM without a convolution, LRP on a
        layer it has no rule for, a gradient method on integer token ids) carries the reason
        in ``unavailable``.
        """
        methods = available_methods()
        inputs = self._sample_inputs()
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
            info["unavailable"] = self._why_not(spec, inputs)
            infos.append(s.MethodInfo.model_validate(info))
        usable = [m.name for m in infos if m.unavailable is None]
        return s.ConfigResponse(
            classes=self.classes,
            models=self.model_names,
            features=[
                s.FeatureInfo(name=f.name, type=f.visualization_type()) for f in self.features
            ],
            methods=infos,
            selected_method=DEFAULT_METHOD
            if DEFAULT_METHOD in usable
            else next(iter(usable), None),
            use_label_for_attr=self.use_label_for_attr,
            scores="raw" if self.score_func is None else "scores",
        )

    def fetch(self, req: s.FetchRequest) -> s.FetchResponse:
        """The next ``count`` examples from ``start`` that pass the filters, attributed."""
        result: s.FetchResponse = self.jobs.run("fetch", lambda job: self.fetch_job(req, job))
        return result

    def reattribute(self, req: s.ReattributeRequest) -> s.ReattributeResponse:
        """One example explained again, for ``req.target`` with model ``req.model``."""
        result: s.ReattributeResponse = self.jobs.run(
            "reattribute", lambda job: self.reattribute_job(req, job)
        )
        return result

    def start_job(
        self, req: s.FetchRequest | s.ReattributeRequest, owner: str | None = None
    ) -> s.JobStarted:
        """Check ``req``, estimate its time, and start it as a background job.

        A job estimated to take over :data:`SLOW_SECONDS` is not started unless
        ``req.confirm``: the answer then carries the estimate and a warning instead.
        """
        spec, args = self.method(req.method, req.arguments)
        if isinstance(req, s.FetchRequest):
            self._check_start(req.start)
            n_runs = req.count * len(self.models)  # up to count examples, every model
        else:
            self._record_for(req)
            n_runs = 1
        seconds, rows = self.estimate(spec, args, n_runs)
        if seconds > SLOW_SECONDS and not req.confirm:
            warning = (
                f"{spec.name} needs about {rows:,} model evaluations per example and model; "
                f"this may take about {plan.duration(seconds)}. Run it anyway, or choose fewer "
                "samples, larger patches or a larger Occlusion window."
            )
            return s.JobStarted(
                job=None, estimate_seconds=seconds, evaluations=rows, warning=warning
            )
        if isinstance(req, s.FetchRequest):
            fetch_req = req
            job = self.jobs.start(
                "fetch", lambda j: self.fetch_job(fetch_req, j).model_dump(), owner
            )
        else:
            re_req = req
            job = self.jobs.start(
                "reattribute", lambda j: self.reattribute_job(re_req, j).model_dump(), owner
            )
        return s.JobStarted(job=job.id, estimate_seconds=seconds, evaluations=rows)

    def job_status(self, job_id: str) -> s.JobStatus:
        """Progress, and once finished the result or error, of a job."""
        return s.JobStatus.model_validate(self.jobs.get(job_id).describe())

    def cancel_job(self, job_id: str) -> s.JobStatus:
        """Cancel a job; its status (``running`` until the work notices, then ``cancelled``)."""
        return s.JobStatus.model_validate(self.jobs.cancel(job_id).describe())

    def estimate(self, spec: MethodSpec, args: dict, n_runs: int) -> tuple[float, int]:
        """Estimated seconds for ``n_runs`` attributions (example x model), and rows per run.

        Rows per run come from :func:`~perspicio.insights.plan.evaluations`; the time per row
        is measured once on the first example (times about 3 where a backward pass is needed).
        """
        rows = self._rows(spec, args)
        total = rows * self._seconds_per_row() * plan.backward_factor(spec.name)
        return total * n_runs, rows

    def _seconds_per_row(self, rows: int = 32) -> float:
        """Seconds one model input takes through a model (averaged over the models).

        Timed on the first example repeated ``rows`` times: the faster of two passes after an
        untimed warm-up (the first pass of a model pays for one-off set-up). 0 when it cannot
        be measured.
        """
        if self._row_seconds is None:
            record, inputs = self.store.get(0), self._sample_inputs()
            if record is None or inputs is None:
                return 0.0
            batch = tuple(x.repeat(rows, *[1] * (x.dim() - 1)) for x in inputs)
            extra = tuple(
                a.repeat(rows, *[1] * (a.dim() - 1))
                if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == 1
                else a
                for a in record.extra or ()
            )
            total = 0.0
            try:
                for model, lock in zip(self.models, self._model_locks):
                    with lock, torch.no_grad():
                        model(*batch, *extra)
                        times = []
                        for _ in range(2):
                            began = time.perf_counter()
                            model(*batch, *extra)
                            times.append(time.perf_counter() - began)
                        total += min(times)
            except Exception:  # the model refuses a batch: fetch will report why
                return 0.0
            self._row_seconds = total / rows / len(self.models)
        return self._row_seconds

    def _rows(self, spec: MethodSpec, args: dict) -> int:
        """Model inputs one attribution evaluates, for an example like the first."""
        inputs = self._sample_inputs()
        if inputs is None:
            return 1
        try:
            kwargs = method_kwargs(spec, args, inputs)
            if spec.kind == "tunnel":
                kwargs["base"] = args["base"]
            n_baselines = max([len(f.baseline_transforms) for f in self.features] + [1])
            return plan.evaluations(spec.name, kwargs, inputs, n_baselines)
        except (ArgumentError, MethodNotApplicable) as exc:
            raise InsightsError(422, str(exc)) from exc

    def fetch_job(self, req: s.FetchRequest, job: Job) -> s.FetchResponse:
        """:meth:`fetch`, reporting to ``job``: scanning first, then one step per example."""
        spec, args = self.method(req.method, req.arguments)
        job.rows_hint = self._rows(spec, args)
        wanted = self._class_filter(req.classes)
        self._check_start(req.start)
        found: list[Record] = []
        position = req.start
        while len(found) < req.count:
            if (position - req.start) % 64 == 0:
                job.step(0.0, 0.05, f"scanning the dataset: example {position}", 1)
            record = self.store.get(position)
            if record is None:
                break
            position += 1
            if self._keep(record, wanted, req.instance_type):
                found.append(record)
        more = self.store.get(position) is not None
        examples = []
        for i, record in enumerate(found):
            share = 0.95 / len(found)
            examples.append(self._example(record, spec, args, req.top_k, job, 0.05 + i * share))
        return s.FetchResponse(
            examples=examples,
            next_start=position if more else None,
            scanned=position - req.start,
            dataset_error=self.store.error,
        )

    def reattribute_job(self, req: s.ReattributeRequest, job: Job) -> s.ReattributeResponse:
        """:meth:`reattribute`, reporting to ``job``."""
        spec, args = self.method(req.method, req.arguments)
        record = self._record_for(req)
        job.rows_hint = self._rows(spec, args)
        job.step(0.0, 1.0, f"attributing example {record.index}")
        view = self._model_view(record, req.model, req.target, spec, args, req.top_k, job)
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

    def _check_start(self, start: int) -> None:
        if start > self.store.loaded + SCAN_LIMIT:  # bound the reading one request causes
            raise InsightsError(
                422,
                f"start {start} is too far past the {self.store.loaded} examples read so "
                f"far; fetch in steps of at most {SCAN_LIMIT}",
            )
        if start > 0 and self.store.get(start - 1) is None:
            raise InsightsError(
                422, f"start {start} is past the end of the dataset ({self.store.loaded} examples)"
            )

    def _record_for(self, req: s.ReattributeRequest) -> Record:
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
        return record

    def _sample_inputs(self) -> tuple[Tensor, ...] | None:
        """The first example's model inputs (after input transforms), or ``None``."""
        try:
            record = self.store.get(0)
            if record is None:
                return None
            return tuple(
                apply_transforms(f.input_transforms, x) for f, x in zip(self.features, record.data)
            )
        except Exception:  # a broken dataset or transform is reported by fetch, not here
            return None

    def _why_not(self, spec: MethodSpec, inputs: tuple[Tensor, ...] | None) -> str | None:
        for name, model in zip(self.model_names, self.models):
            reason = not_applicable(spec, model, inputs)
            if reason is not None:
                return reason if len(self.models) == 1 else f"{name}: {reason}"
        return None

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

    def _example(
        self, record: Record, spec: MethodSpec, args: dict, top_k: int, job: Job, at: float
    ) -> s.ExampleView:
        views = []
        share = (1.0 - at) / max(1, len(self.models)) if at < 1 else 0.0
        for m in range(len(self.models)):
            top = int(record.scores[m].argmax())
            use_label = self.use_label_for_attr and record.label is not None
            target = record.label if use_label and record.label is not None else top
            message = f"attributing example {record.index} with {self.model_names[m]}"
            job.step(at + m * share, at + (m + 1) * share, message)
            views.append(self._model_view(record, m, target, spec, args, top_k, job))
        label = None if record.label is None else self._class(record.label)
        return s.ExampleView(index=record.index, label=label, models=views)

    def _model_view(
        self,
        record: Record,
        m: int,
        target: int,
        spec: MethodSpec,
        args: dict,
        top_k: int,
        job: Job,
    ) -> s.ModelView:
        scores = record.scores[m]
        values, indices = torch.topk(scores, min(top_k, scores.shape[0]))
        predictions = [
            s.Prediction(index=int(i), name=self._class(int(i)).name, score=json_safe(float(v)))
            for v, i in zip(values, indices)
        ]
        correct = None if record.label is None else int(indices[0]) == record.label
        attributions = self._attribute(record, m, target, spec, args, job)
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
        self, record: Record, m: int, target: int, spec: MethodSpec, args: dict, job: Job
    ) -> tuple[Tensor, ...]:
        try:
            inputs = tuple(
                apply_transforms(f.input_transforms, x) for f, x in zip(self.features, record.data)
            )
            reason = not_applicable(spec, self.models[m], inputs)
            if reason is not None:
                raise MethodNotApplicable(
                    f"{spec.name} cannot explain {self.model_names[m]}: {reason}"
                )
            baselines = self._baselines(inputs)
            with self._model_locks[m]:
                model = Watched(self.models[m], job)
                return run_method(spec, args, model, inputs, baselines, target, record.extra)
        except Cancelled:
            raise
        except (ArgumentError, MethodNotApplicable) as exc:
            raise InsightsError(422, str(exc)) from exc
        except Exception as exc:  # the user's model, transforms or a method refused the inputs
            job.check()  # a cancellation that a method wrapped in its own error
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
