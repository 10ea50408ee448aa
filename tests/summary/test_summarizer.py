"""Summarizers against torch reductions over the concatenated data, for several batchings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perspicio.summary import (
    MSE,
    ClassSummarizer,
    CommonStats,
    Count,
    Max,
    Mean,
    Min,
    StdDev,
    Sum,
    Summarizer,
    SummarizerSingleTensor,
    Var,
)
from perspicio.summary.summarizer import _resolve

N = 10


def _data(seed: int = 0) -> torch.Tensor:
    return torch.randn(N, 3, 4, generator=torch.Generator().manual_seed(seed))


def _stats(order: int) -> list:
    return [Mean(), Var(order=order), StdDev(order=order), Min(), Max(), Sum(), Count()]


def _expected(data: torch.Tensor, order: int) -> dict:
    return {
        "mean": data.mean(0),
        "var": data.var(0, correction=order),
        "std": data.std(0, correction=order),
        "min": data.amin(0),
        "max": data.amax(0),
        "sum": data.sum(0),
        "count": data.shape[0],
    }


def _check(summary: dict, data: torch.Tensor, order: int) -> None:
    expected = _expected(data, order)
    var_name = "variance" if order == 0 else "sample_variance"
    std_name = "std_dev" if order == 0 else "sample_std_dev"
    assert summary["count"] == expected["count"]
    for name, key in (("mean", "mean"), ("min", "min"), ("max", "max"), ("sum", "sum")):
        torch.testing.assert_close(summary[name], expected[key])
    for name, key in ((var_name, "var"), (std_name, "std")):
        torch.testing.assert_close(summary[name].float(), expected[key])


@pytest.mark.parametrize("order", [0, 1])
def test_summarizer_one_sample_per_update(order):
    data = _data()
    summ = Summarizer(_stats(order))
    for row in data:
        summ.update(row)
    _check(summ.summary, data, order)


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("batch", [1, 3, N])
def test_class_summarizer_batchings(order, batch):
    data = _data(1)
    summ = ClassSummarizer(_stats(order))
    for chunk in data.split(batch):
        summ.update(chunk, labels="all")
    _check(summ.summary, data, order)
    _check(summ.class_summaries["all"], data, order)


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("batch", [1, 3, N])
@pytest.mark.parametrize("label_form", ["list", "tensor", "numpy"])
def test_class_summarizer_per_class(order, batch, label_form):
    data = _data(2)
    labels = torch.tensor([2, 0, 2, 1, 0, 2, 2, 1, 0, 2])
    summ = ClassSummarizer(_stats(order))
    for chunk, chunk_labels in zip(data.split(batch), labels.split(batch)):
        form = {"list": chunk_labels.tolist(), "tensor": chunk_labels}
        form["numpy"] = chunk_labels.numpy()
        summ.update(chunk, labels=form[label_form])
    per_class = summ.class_summaries
    assert list(per_class) == [2, 0, 1]  # first-seen order, plain Python keys
    for label in (0, 1, 2):
        _check(per_class[label], data[labels == label], order)
    _check(summ.summary, data, order)


def test_single_label_forms():
    data = _data(3)
    summ = ClassSummarizer([Mean()])
    summ.update(data[:4], labels=torch.tensor(5))
    summ.update(data[4:6], labels=[5])
    summ.update(data[6:], labels=(1, "x"))
    torch.testing.assert_close(summ.class_summaries[5]["mean"], data[:6].mean(0))
    torch.testing.assert_close(summ.class_summaries[(1, "x")]["mean"], data[6:].mean(0))


def test_tuple_inputs():
    a, b = _data(4), _data(5)[:, 0]
    summ = Summarizer(CommonStats())
    for x, y in zip(a, b):
        summ.update((x, y))
    first, second = summ.summary
    torch.testing.assert_close(first["mean"], a.mean(0))
    torch.testing.assert_close(second["sample_std_dev"].float(), b.std(0))
    labelled = ClassSummarizer([Max()])
    labelled.update((a, b), labels=[0] * 5 + [1] * 5)
    torch.testing.assert_close(labelled.class_summaries[1][1]["max"], b[5:].amax(0))
    torch.testing.assert_close(labelled.summary[0]["max"], a.amax(0))


def test_numbers_and_labels_none():
    summ = ClassSummarizer([Mean(), Count()])
    for value in (1.0, 2, 6.0):
        summ.update(value)
    assert summ.summary == {"mean": torch.tensor(3.0), "count": 3}
    assert summ.class_summaries == {}


def test_dependencies_are_resolved_but_hidden():
    data = _data(6)
    summ = Summarizer([StdDev(order=1)])
    for row in data:
        summ.update(row)
    assert list(summ.summary) == ["sample_std_dev"]
    torch.testing.assert_close(summ.summary["sample_std_dev"].float(), data.std(0))
    ordered, shown = _resolve([StdDev(order=1), Mean(name="avg"), Mean()])
    assert [type(s).__name__ for s in ordered] == ["Count", "Mean", "MSE", "Var", "StdDev"]
    assert [ordered[i].name for i in shown] == ["sample_std_dev", "avg"]


def test_requested_names_and_duplicates():
    summ = Summarizer([Mean(name="avg"), Var(), Mean(), MSE()])
    summ.update(torch.tensor([1.0, 3.0]))
    summ.update(torch.tensor([3.0, 3.0]))
    out = summ.summary
    assert list(out) == ["avg", "variance", "mse"]
    assert out["avg"].tolist() == [2.0, 3.0] and out["variance"].tolist() == [1.0, 0.0]
    assert out["mse"].tolist() == [2.0, 0.0]


def test_summarizer_single_tensor():
    stats, shown = _resolve([Var()])
    single = SummarizerSingleTensor(stats, shown)
    single.update(torch.tensor([0.0]))
    single.update(torch.tensor([2.0]))
    assert single.summary == {"variance": torch.tensor([1.0], dtype=torch.float64)}
    mean = single.get(Mean())
    assert isinstance(mean, Mean) and mean.get().tolist() == [1.0]
    assert single.get(Max()) is None


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Summarizer([Mean(), 3]), TypeError, "stats must be Stat instances; got int"),
        (
            lambda: SummarizerSingleTensor([Mean(), Count()], [0]),
            ValueError,
            r"Mean\(name='mean'\) depends on Count\(name='count'\), which must come before",
        ),
        (
            lambda: SummarizerSingleTensor([Count()], [1]),
            ValueError,
            r"summary_stats_indices has 1, outside 0..0",
        ),
    ],
)
def test_bad_construction(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_missing_dependency_in_init():
    mse = MSE()
    mse._other_stats = SummarizerSingleTensor([Count()], [0])
    with pytest.raises(ValueError, match="MSE needs Mean in the same summarizer"):
        mse.init()


def test_bad_updates():
    summ = Summarizer([Mean()])
    summ.update(torch.zeros(3))
    with pytest.raises(TypeError, match="update got tuple but the first update got a single"):
        summ.update((torch.zeros(3),))
    with pytest.raises(ValueError, match=r"shape of the first, \(3,\); got \(4,\)"):
        summ.update(torch.zeros(4))
    with pytest.raises(TypeError, match="must be a tensor or a number; got str"):
        summ.update("x")  # type: ignore[arg-type]
    pair = Summarizer([Mean()])
    pair.update((torch.zeros(1), torch.zeros(2)))
    with pytest.raises(ValueError, match="update got 1 tensors but earlier updates had 2"):
        pair.update((torch.zeros(1),))


@pytest.mark.parametrize(
    ("x", "labels", "message"),
    [
        (torch.zeros(4, 2), [0, 1, 0], r"one entry per example \(4\) or exactly one; got 3"),
        ((torch.zeros(4, 2), torch.zeros(3, 2)), [0, 1, 0, 1], "same batch size on dim 0"),
        (torch.tensor(1.0), 0, "same batch size on dim 0"),
    ],
)
def test_class_summarizer_bad_labels(x, labels, message):
    with pytest.raises(ValueError, match=message):
        ClassSummarizer([Mean()]).update(x, labels=labels)


def test_empty_stats_and_numpy_input():
    summ = Summarizer([])
    summ.update(np.ones(2))
    assert summ.summary == {}
