"""The explorer's JSON messages, as pydantic models (they also make the OpenAPI schema).

Requests are strict and bounded (lengths, counts, string sizes), so that a malformed or
oversized request is refused with a 422 before any work is done.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from torch import Tensor

MAX_COUNT = 32  # examples per fetch
MAX_CLASSES_FILTER = 1000
ShortStr = Annotated[str, StringConstraints(max_length=200)]
ArgName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ArgValue = bool | int | float | Annotated[str, StringConstraints(max_length=200)] | None
ArgList = Annotated[list[int], Field(max_length=8)]
Arguments = Annotated[dict[ArgName, ArgValue | ArgList], Field(max_length=32)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FetchRequest(_Request):
    """Which examples to show and how to attribute them."""

    classes: Annotated[list[ShortStr], Field(max_length=MAX_CLASSES_FILTER)] = Field(
        default_factory=list,
        description="keep examples whose true or top predicted class is one of these (empty: all)",
    )
    instance_type: Literal["all", "correct", "incorrect"] = Field(
        "all", description="keep examples some model predicts correctly / incorrectly"
    )
    method: ShortStr | None = Field(None, description="attribution method (default: the first)")
    arguments: Arguments = Field(default_factory=dict, description="the method's arguments")
    start: int = Field(0, ge=0, le=10_000_000, description="dataset position to scan from")
    count: int = Field(4, ge=1, le=MAX_COUNT, description="how many matching examples to return")
    top_k: int = Field(3, ge=1, le=50, description="predicted classes listed per model")
    confirm: bool = Field(False, description="start a job even if it is estimated to be slow")


class ReattributeRequest(_Request):
    """Attribute one shown example again, to another class or with another model."""

    example: int = Field(ge=0, le=10_000_000, description="the example's dataset position")
    model: int = Field(0, ge=0, le=1000, description="index of the model")
    target: int = Field(ge=0, le=10_000_000, description="index of the class to explain")
    method: ShortStr | None = None
    arguments: Arguments = Field(default_factory=dict)
    top_k: int = Field(3, ge=1, le=50)
    confirm: bool = Field(False, description="start a job even if it is estimated to be slow")


class ClassRef(BaseModel):
    """A class index with its name."""

    index: int
    name: str


class Prediction(ClassRef):
    """One predicted class and its score (after ``score_func``; null if not finite)."""

    score: float | None


class FeatureView(BaseModel):
    """One input feature of one example, drawn for one model."""

    name: str
    type: str
    contribution: float = Field(description="share of total absolute attribution, in [0, 1]")
    base: Any = None
    modified: Any = None


class ModelView(BaseModel):
    """One model's predictions and attributions for one example."""

    model: int
    model_name: str
    predictions: list[Prediction]
    target: ClassRef
    correct: bool | None
    method: str
    features: list[FeatureView]


class ExampleView(BaseModel):
    """One example: its true label and a view per model."""

    index: int
    label: ClassRef | None
    models: list[ModelView]


class FetchResponse(BaseModel):
    """The examples that matched, and where to continue scanning."""

    examples: list[ExampleView]
    next_start: int | None = Field(description="position to fetch more from; null at the end")
    scanned: int
    dataset_error: str | None = Field(None, description="why the dataset ended early, if it did")


class ReattributeResponse(BaseModel):
    """The new view of one example for one model."""

    example: int
    view: ModelView


class ArgInfo(BaseModel):
    """A method argument as the frontend renders it."""

    name: str
    type: str
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: list[str] = Field(default_factory=list)
    help: str = ""


class MethodInfo(BaseModel):
    """An available method."""

    name: str
    summary: str
    args: list[ArgInfo]
    unavailable: str | None = Field(None, description="why it cannot explain these models")


class FeatureInfo(BaseModel):
    """An input feature's name and view type."""

    name: str
    type: str


class ConfigResponse(BaseModel):
    """Everything the frontend needs to build its controls."""

    classes: list[str]
    models: list[str]
    features: list[FeatureInfo]
    methods: list[MethodInfo]
    selected_method: str | None
    use_label_for_attr: bool
    max_count: int = MAX_COUNT
    scores: Literal["scores", "raw"] = Field(
        "scores", description="raw: model outputs (no score_func), drawn relative to the largest"
    )
    mode: Literal["live", "result"] = Field(
        default="live", description="result: a saved Explanation, read-only (no model to run)"
    )
    result: ResultInfo | None = Field(default=None, description="the saved result, in result mode")


class Importance(BaseModel):
    """One feature's global importance: its mean absolute attribution over the examples."""

    name: str
    value: float | None


class ResultInfo(BaseModel):
    """What a saved result holds, shown once above its examples."""

    method: str
    arguments: dict[str, Any]
    examples: int
    targets: list[str] = Field(description="the distinct explained targets, for the filter")
    has_output: bool
    has_base_value: bool
    importance: list[Importance] = Field(
        default_factory=list, description="top features by mean |attribution| (tabular data)"
    )
    note: str


class ResultPageRequest(_Request):
    """A page of a saved result's examples."""

    targets: Annotated[list[ShortStr], Field(max_length=MAX_CLASSES_FILTER)] = Field(
        default_factory=list, description="keep examples explaining one of these targets"
    )
    order: Literal["index", "target", "output", "attribution"] = Field(
        "index",
        description="example order: position, target, output (largest first), or total "
        "absolute attribution (largest first)",
    )
    start: int = Field(0, ge=0, le=10_000_000, description="position in the filtered order")
    count: int = Field(4, ge=1, le=MAX_COUNT, description="examples per page")


class ResultExample(BaseModel):
    """One example of a saved result: its target, scores and drawn features."""

    index: int
    target: str | None
    output: float | None
    base_value: float | None
    features: list[FeatureView]


class ResultPage(BaseModel):
    """The examples of one page, and where the neighbouring pages start."""

    examples: list[ResultExample]
    start: int
    total: int = Field(description="examples that pass the filter")
    next_start: int | None
    prev_start: int | None


ConfigResponse.model_rebuild()  # it names ResultInfo, defined after it


class JobStarted(BaseModel):
    """A background job, or (job null) the warning that it would be slow."""

    job: str | None
    estimate_seconds: float
    evaluations: int = Field(description="model evaluations per example and model")
    warning: str | None = None


class JobStatus(BaseModel):
    """Where a job stands; ``result`` is a FetchResponse or ReattributeResponse once done."""

    id: str
    kind: str
    state: Literal["running", "done", "failed", "cancelled"]
    progress: float
    message: str
    result: dict[str, Any] | None = None
    error: str | None = None
    status: int = 200


def validation_message(errors: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """A one-line summary of pydantic errors, and a compact copy without the echoed input."""
    compact: list[dict[str, Any]] = []
    for err in errors[:20]:
        loc = [str(p) for p in err.get("loc", ())]
        if loc[:1] == ["body"]:
            loc = loc[1:]
        compact.append({"loc": loc, "msg": str(err.get("msg", "")), "type": err.get("type")})
    parts = [f"{'.'.join(c['loc']) or 'body'}: {c['msg']}" for c in compact[:5]]
    return "invalid request: " + "; ".join(parts), compact


class ErrorResponse(BaseModel):
    """Every refused request gets this body."""

    error: str
    detail: Any = None


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
