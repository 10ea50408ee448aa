"""The explorer's result mode: a saved :class:`~perspicio.result.Explanation`, read-only.

:class:`ResultEngine` answers the same ``config`` request as the live
:class:`~perspicio.insights.engine.Engine` (with ``mode="result"``) and pages through the saved
examples instead of running a model: each example is drawn with the explorer's own feature
views, chosen from the shape of each input (one example's shape):

- ``(C, H, W)``: an image (the original, a heat map and a blend); only the heat map's colours
  mean something when the inputs were not kept;
- ``(T, D)``: a sequence of ``T`` positions (e.g. token embeddings), attributions summed over
  ``D``; ``(T,)`` of integer data: token ids;
- anything else: bars of the named features (the largest :data:`MAX_BARS` by
  ``|attribution|`` when there are more).

Nothing here runs a model, so the explained targets, outputs and base values are those saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from perspicio._core.validate import ArgumentError
from perspicio.insights import schemas as s
from perspicio.insights.features import BaseFeature, GeneralFeature, ImageFeature, TextFeature
from perspicio.insights.jobs import JobManager
from perspicio.insights.schemas import json_safe
from perspicio.insights.store import InsightsError
from perspicio.result import Explanation

MAX_BARS = 32  # bars drawn per tabular input and example
TOP_FEATURES = 20  # features in the global-importance panel
READ_ONLY = (
    "A saved result: the attributions were computed when the file was written, so there is no "
    "model here to attribute again; method and target controls are off."
)


def load_result(path: str | Path) -> Explanation:
    """The :class:`~perspicio.result.Explanation` saved at ``path``.

    Raises:
        ArgumentError: ``path`` is missing, or is not a perspicio explanation file; the message
            is one line naming the path.
    """
    if not Path(path).is_file():
        raise ArgumentError(f"result file {str(path)!r} does not exist")
    try:
        return Explanation.load(path)
    except ArgumentError:
        raise
    except Exception as exc:  # safetensors' own errors, bad metadata, inconsistent tensors
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ArgumentError(
            f"{str(path)!r} is not a perspicio explanation file ({reason})"
        ) from None


def _target_names(target: Tensor | None, n: int) -> list[str | None]:
    if target is None:
        return [None] * n
    rows = target.reshape(n, -1).tolist()
    return [str(r[0]) if len(r) == 1 else "(" + ", ".join(str(v) for v in r) + ")" for r in rows]


def _sort_key(name: str | None) -> tuple[Any, ...]:
    """Targets in numeric order where they are numbers (``"2" < "10"``), missing ones last."""
    if name is None:
        return (2, 0.0, "")
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


class _Input:
    """How one input of the explanation is drawn."""

    def __init__(self, index: int, values: Tensor, data: Tensor | None, names: Sequence[str]):
        shape = tuple(values.shape[1:])
        label = f"input {index}"
        self.names = list(names)
        self.kind = "general"
        self.feature: BaseFeature
        if len(shape) == 3:
            self.kind = "image"
            self.feature = ImageFeature(label, None, None)
        elif len(shape) == 2 or (
            len(shape) == 1 and data is not None and not data.dtype.is_floating_point
        ):
            self.kind = "text"
            ids = data is not None and len(shape) == 1
            self.feature = TextFeature(label, None, None, self._ids if ids else self._positions)
        else:
            self.feature = GeneralFeature(label, self.names)

    @staticmethod
    def _ids(row: Tensor) -> list[str]:
        return [str(int(v)) for v in row.reshape(-1).tolist()]

    @staticmethod
    def _positions(row: Tensor) -> list[str]:
        return [f"#{t}" for t in range(row.shape[0])]

    def draw(self, attribution: Tensor, data: Tensor | None, frac: float) -> s.FeatureView:
        """The view of one example (``attribution`` and ``data`` without a batch dimension)."""
        feature = self.feature
        if data is None:
            data = torch.zeros_like(attribution)
        if self.kind == "general":
            flat_attr, flat_data = attribution.reshape(-1), data.reshape(-1)
            if flat_attr.numel() > MAX_BARS:
                keep = flat_attr.abs().argsort(descending=True)[:MAX_BARS].sort().values
                feature = GeneralFeature(feature.name, [self.names[int(i)] for i in keep])
                flat_attr, flat_data = flat_attr[keep], flat_data[keep]
            attribution, data = flat_attr, flat_data
        out = feature.visualize(attribution[None], data[None], frac)
        return s.FeatureView(
            name=out.name,
            type=out.type,
            contribution=json_safe(float(out.contribution)) or 0.0,
            base=json_safe(out.base),
            modified=json_safe(out.modified),
        )


class ResultEngine:
    """The read-only requests of the explorer over a saved explanation.

    Args:
        result: The explanation, or the path of a file written by
            :meth:`~perspicio.result.Explanation.save`.

    Example:
        >>> import torch
        >>> from perspicio.result import Explanation
        >>> e = Explanation(values=(torch.tensor([[1.0, -2.0], [0.5, 0.0]]),),
        ...                 target=torch.tensor([1, 0]), feature_names=("a", "b"))
        >>> engine = ResultEngine(e)
        >>> [i.name for i in engine.config().result.importance]
        ['b', 'a']
        >>> page = engine.page(s.ResultPageRequest(order="target"))
        >>> [(x.index, x.target) for x in page.examples]
        [(1, '0'), (0, '1')]
    """

    def __init__(self, result: Explanation | str | Path) -> None:
        if isinstance(result, str | Path):
            result = load_result(result)
        if not isinstance(result, Explanation):
            raise TypeError(f"result must be an Explanation or a file path, got {result!r}")
        if len(result) == 0:
            raise ArgumentError("result holds no examples")
        self.result = result
        self.jobs = JobManager()  # none are started; the server's stop() cancels them all
        names, offset, self.inputs = result.names, 0, []
        for i, v in enumerate(result.values):
            size = int(torch.Size(v.shape[1:]).numel())
            data = None if result.data is None else result.data[i]
            self.inputs.append(_Input(i, v, data, names[offset : offset + size]))
            offset += size
        self.targets = _target_names(result.target, len(result))
        self._totals = result.flat().detach().abs().sum(1)

    def config(self) -> s.ConfigResponse:
        """The result's description; no methods, since nothing can be re-attributed."""
        r = self.result
        distinct = sorted({t for t in self.targets if t is not None}, key=_sort_key)
        return s.ConfigResponse(
            classes=distinct,
            models=[],
            features=[s.FeatureInfo(name=i.feature.name, type=i.kind) for i in self.inputs],
            methods=[],
            selected_method=None,
            use_label_for_attr=False,
            scores="raw",
            mode="result",
            result=s.ResultInfo(
                method=r.method or "unknown method",
                arguments=json_safe(r.arguments),
                examples=len(r),
                targets=distinct,
                has_output=r.output is not None,
                has_base_value=r.base_value is not None,
                importance=self.importance(),
                note=READ_ONLY,
            ),
        )

    def importance(self, k: int = TOP_FEATURES) -> list[s.Importance]:
        """The top ``k`` features by mean ``|attribution|``, for tabular results only."""
        if any(i.kind != "general" for i in self.inputs):
            return []
        return [
            s.Importance(name=name, value=json_safe(value))
            for name, value in self.result.top_features(k)
        ]

    def order(self, req: s.ResultPageRequest) -> list[int]:
        """The positions of the examples that pass ``req``'s filter, in its order."""
        rows = list(range(len(self.result)))
        if req.targets:
            wanted = set(req.targets)
            unknown = wanted.difference(t for t in self.targets if t is not None)
            if unknown:
                raise InsightsError(422, f"unknown target(s): {sorted(unknown)[:10]}")
            rows = [i for i in rows if self.targets[i] in wanted]
        if req.order == "target":
            rows.sort(key=lambda i: _sort_key(self.targets[i]))
        elif req.order == "output":
            if self.result.output is None:
                raise InsightsError(422, "this result has no saved outputs to sort by")
            out = self.result.output.reshape(len(self.result), -1)[:, 0]
            rows.sort(key=lambda i: -float(out[i]))
        elif req.order == "attribution":
            rows.sort(key=lambda i: -float(self._totals[i]))
        return rows  # sort() is stable: ties keep the dataset order

    def page(self, req: s.ResultPageRequest) -> s.ResultPage:
        """The examples ``req.start`` to ``req.start + req.count`` of the filtered order."""
        rows = self.order(req)
        if req.start > 0 and req.start >= len(rows):
            raise InsightsError(422, f"start {req.start} is past the {len(rows)} matching examples")
        shown = rows[req.start : req.start + req.count]
        end = req.start + len(shown)
        return s.ResultPage(
            examples=[self.example(i) for i in shown],
            start=req.start,
            total=len(rows),
            next_start=end if end < len(rows) else None,
            prev_start=max(0, req.start - req.count) if req.start > 0 else None,
        )

    def example(self, i: int) -> s.ResultExample:
        """Example ``i`` with every input drawn."""
        r = self.result
        totals = [float(v[i].detach().abs().sum()) for v in r.values]
        grand = sum(totals)
        features = []
        for k, inp in enumerate(self.inputs):
            data = None if r.data is None else r.data[k][i].detach()
            frac = totals[k] / grand if grand > 0 else 0.0
            features.append(inp.draw(r.values[k][i].detach(), data, frac))
        return s.ResultExample(
            index=i,
            target=self.targets[i],
            output=None
            if r.output is None
            else json_safe(float(r.output.reshape(len(r), -1)[i, 0])),
            base_value=None
            if r.base_value is None
            else json_safe(float(r.base_value.reshape(len(r), -1)[i, 0])),
            features=features,
        )

    def refuse(self) -> InsightsError:
        """The error for any request that would run a model."""
        return InsightsError(409, "this explorer shows a saved result and cannot run a model")
