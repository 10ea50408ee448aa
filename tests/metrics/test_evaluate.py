"""evaluate and format_table: the table agrees with the metrics called directly."""

from __future__ import annotations

import doctest
import importlib
import math
from typing import Any

import pytest
import torch

from perspicio.attr import InputXGradient, IntegratedGradients, Saliency
from perspicio.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    MetricInput,
    deletion_curve,
    evaluate,
    format_table,
    sparseness,
)
from perspicio.testing import ConvNet, ReLUMLP
from tests.helpers import CountingModel

X = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))


def test_docstring_examples() -> None:
    assert doctest.testmod(importlib.import_module("perspicio.metrics.evaluate")).failed == 0


def test_every_builtin_metric_runs_and_has_a_direction() -> None:
    model = ConvNet()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    methods = {"saliency": Saliency(model), "ig": IntegratedGradients(model)}
    torch.manual_seed(0)
    rows = evaluate(
        model,
        methods,
        x,
        target=[1, 2],
        metrics=list(METRICS),
        attribute_kwargs={"ig": {"n_steps": 4}},
    )
    assert set(METRICS) == set(HIGHER_IS_BETTER)
    assert [r["method"] for r in rows] == ["saliency", "ig"]
    for row in rows:
        assert set(row) == {"method", *METRICS}
        assert all(math.isfinite(row[m]) for m in METRICS)


def test_values_are_the_means_of_the_metrics() -> None:
    model = ReLUMLP()
    ixg = InputXGradient(model)
    rows = evaluate(
        model, {"ixg": ixg}, X, target=1, baselines=0.5, metrics=["deletion_auc", "sparseness"]
    )
    attrs = ixg.attribute(X, target=1)
    auc = deletion_curve(model, X, attrs, baselines=0.5, target=1).auc
    assert rows[0]["deletion_auc"] == pytest.approx(float(auc.mean()), rel=1e-6)
    assert rows[0]["sparseness"] == pytest.approx(float(sparseness(attrs).mean()), rel=1e-6)


def test_custom_metrics_and_functions_as_methods() -> None:
    seen: list[MetricInput] = []

    def record(m: MetricInput) -> torch.Tensor:
        seen.append(m)
        return torch.tensor([1.0, float("nan"), 3.0, float("inf")])

    def explain(
        inputs: torch.Tensor,
        target: Any = None,
        additional_forward_args: Any = None,
        scale: float = 1.0,
    ) -> torch.Tensor:
        return inputs * scale

    rows = evaluate(
        ReLUMLP(),
        {"fn": explain},
        X,
        target=0,
        metrics={"mine": record},
        attribute_kwargs={"fn": {"scale": 2.0}},
    )
    assert rows == [{"method": "fn", "mine": 2.0}]  # non-finite values are left out
    torch.testing.assert_close(seen[0].attributions, X * 2)
    assert seen[0].explain_kwargs == {"target": 0, "additional_forward_args": None, "scale": 2.0}
    assert seen[0].multiplies_by_inputs


def test_each_method_attributes_once() -> None:
    model = CountingModel(ReLUMLP())
    evaluate(model, {"s": Saliency(model)}, X, target=0, metrics=["sparseness", "complexity"])
    assert model.calls == 1


def test_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    evaluate(
        ReLUMLP(),
        {"s": Saliency(ReLUMLP())},
        X,
        target=0,
        metrics=["sparseness"],
        show_progress=True,
    )
    assert "evaluate: 1 methods x 1 metrics" in capsys.readouterr().err


def test_format_table_ranks_by_direction() -> None:
    rows = [
        {"method": "a", "insertion_auc": 0.2, "x": 1},
        {"method": "b", "insertion_auc": 0.7, "x": 2},
    ]
    table = format_table(rows, sort_by="insertion_auc", digits=2)
    assert table.splitlines()[2:] == ["| 1 | b | 0.70 | 2 |", "| 2 | a | 0.20 | 1 |"]
    assert format_table(rows).splitlines()[0] == "| method | insertion_auc | x |"
    with pytest.raises(ValueError, match="sort_by must be one of the metrics"):
        format_table(rows, sort_by="deletion_auc")


BAD = [
    ({"metrics": ["accuracy"]}, ValueError, "unknown metric 'accuracy'"),
    ({"metrics": []}, ValueError, "give at least one metric"),
    ({"metrics": {"m": 3}}, TypeError, "metric 'm' must be a callable"),
    (
        {"attribute_kwargs": {"ig": {}}},
        ValueError,
        r"attribute_kwargs names methods that are not given: \['ig'\]",
    ),
    ({"target": [0, 1]}, ValueError, "target gives 2 indices but the batch has 4"),
    ({"baselines": torch.ones(3, 6)}, ValueError, r"baselines\[0\] has shape \(3, 6\)"),
]


@pytest.mark.parametrize(("override", "error", "message"), BAD)
def test_bad_input_before_any_model_call(
    override: dict[str, Any], error: type, message: str
) -> None:
    model = CountingModel(ReLUMLP())
    with pytest.raises(error, match=message):
        evaluate(model, {"s": Saliency(model)}, X, **{"target": 0, **override})
    assert model.calls == 0
