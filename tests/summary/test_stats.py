"""Individual statistics: identity, names, dtypes, edge cases and numerical stability."""

from __future__ import annotations

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
    Stat,
    StdDev,
    Sum,
    Summarizer,
    Var,
)


def test_equality_ignores_name_but_not_parameters():
    assert Mean() == Mean(name="average") and hash(Mean()) == hash(Mean(name="average"))
    assert Var(order=0) != Var(order=1) and Var() != StdDev()
    assert len({Var(), Var(order=0), Var(order=1), StdDev(order=1)}) == 3
    assert Mean() != "mean"


@pytest.mark.parametrize(
    ("stat", "name"),
    [
        (Mean(), "mean"),
        (Count(), "count"),
        (MSE(), "mse"),
        (Min(), "min"),
        (Max(), "max"),
        (Sum(), "sum"),
        (Var(), "variance"),
        (Var(order=1), "sample_variance"),
        (Var(order=2), "variance(2)"),
        (StdDev(), "std_dev"),
        (StdDev(order=1), "sample_std_dev"),
        (StdDev(order=3), "std_dev(3)"),
        (Min(name="lowest", min_fn=torch.minimum), "lowest"),
        (Var(name="v", order=1), "v"),
    ],
)
def test_names(stat, name):
    assert stat.name == name


def test_default_name_of_a_parametrised_custom_stat():
    class Quantile(Stat):
        def __init__(self, q: float) -> None:
            super().__init__(q=q)

    assert Quantile(0.5).name == "quantile(q=0.5)"


def test_common_stats():
    assert [s.name for s in CommonStats()] == [
        "mean",
        "sample_variance",
        "sample_std_dev",
        "min",
        "max",
    ]


def test_base_stat_is_abstract():
    with pytest.raises(NotImplementedError):
        Stat().update(torch.zeros(1))
    with pytest.raises(NotImplementedError):
        Stat().get()


def test_integer_input_dtypes():
    summ = Summarizer([Mean(), Sum(), Min(), Var(), Count()])
    for row in torch.tensor([[1, 2], [3, 5]], dtype=torch.int32):
        summ.update(row)
    out = summ.summary
    assert out["mean"].dtype == torch.float64 and out["mean"].tolist() == [2.0, 3.5]
    assert out["sum"].dtype == torch.int32 and out["sum"].tolist() == [4, 7]
    assert out["min"].dtype == torch.int32 and out["variance"].dtype == torch.float64
    assert out["count"] == 2


def test_values_before_enough_samples():
    summ = Summarizer([Var(order=1), StdDev(), MSE(), Mean()])
    assert summ.summary is None
    summ.update(torch.tensor([4.0, 2.0]))
    out = summ.summary
    assert out["sample_variance"].tolist() == [0.0, 0.0]  # n <= order
    assert out["std_dev"].tolist() == [0.0, 0.0]
    assert out["mse"].tolist() == [0.0, 0.0]
    assert out["mean"].tolist() == [4.0, 2.0]


def test_first_sample_is_copied():
    x = torch.tensor([1.0, 2.0])
    summ = Summarizer([Mean(), Min(), Max(), Sum()])
    summ.update(x)
    x.add_(100.0)
    assert all(v.tolist() == [1.0, 2.0] for v in summ.summary.values())


@pytest.mark.parametrize("batched", [False, True])
def test_welford_is_stable_with_a_large_offset(batched):
    gen = torch.Generator().manual_seed(0)
    data = 1e9 + torch.randn(200, 3, generator=gen, dtype=torch.float64)
    summ = ClassSummarizer([Var(order=1), Mean()])
    if batched:
        for chunk in data.split(64):
            summ.update(chunk, labels=0)
    else:
        for row in data:
            summ.update(row)
    expected = (data - data.mean(0)).pow(2).sum(0) / 199
    naive = (data.pow(2).sum(0) - data.sum(0).pow(2) / 200) / 199
    assert not torch.allclose(naive, expected, rtol=1e-3)  # the textbook formula fails here
    torch.testing.assert_close(summ.summary["sample_variance"], expected, rtol=1e-6, atol=0)


def test_custom_fold_functions_are_used_in_batches():
    calls = []

    def smallest(a, b):
        calls.append(1)
        return torch.minimum(a, b)

    data = torch.tensor([[3.0, 1.0], [2.0, 5.0], [4.0, 0.0]])
    summ = ClassSummarizer([Min(min_fn=smallest), Sum(add_fn=torch.add)])
    summ.update(data, labels=[7, 7, 7])
    assert summ.class_summaries[7]["min"].tolist() == [2.0, 0.0]
    assert summ.summary["sum"].tolist() == [9.0, 6.0]
    assert calls  # the user's function ran, one sample at a time


def test_custom_stat_without_batch_support():
    class Last(Stat):
        def __init__(self) -> None:
            super().__init__()
            self.value: torch.Tensor | None = None

        def update(self, x: torch.Tensor) -> None:
            self.value = x

        def get(self) -> torch.Tensor | None:
            return self.value

    class RangeStat(Stat):
        """Reads Min and Max after every sample, so it must see per-sample updates."""

        def dependencies(self) -> list[Stat]:
            return [Min(), Max()]

        def init(self) -> None:
            self.low, self.high = self._get_stat(Min()), self._get_stat(Max())
            self.widths: list[float] = []

        def update(self, x: torch.Tensor) -> None:
            self.widths.append(float((self.high.get() - self.low.get()).sum()))

        def get(self) -> list[float]:  # type: ignore[override]
            return self.widths

    summ = ClassSummarizer([Last(), RangeStat()])
    summ.update(torch.tensor([[1.0], [4.0], [2.0]]), labels=["a", "a", "b"])
    assert summ.summary["last"].tolist() == [2.0]
    assert summ.summary["rangestat"] == [0.0, 3.0, 3.0]
    assert summ.class_summaries["a"]["rangestat"] == [0.0, 3.0]


@pytest.mark.parametrize(
    ("stat", "dependency"),
    [(Mean(), "Count"), (MSE(), "Mean"), (Var(), "MSE"), (StdDev(), "Var")],
)
def test_stats_used_outside_a_summarizer_say_so(stat: Stat, dependency: str) -> None:
    with pytest.raises(RuntimeError, match=f"depends on {dependency}, which a Summarizer"):
        for _ in range(2):  # Mean's first update needs no count; its second does
            stat.update(torch.ones(2))
            stat.get()


def test_stats_inside_a_summarizer_need_no_setup() -> None:
    s = Summarizer([Mean(), StdDev()])
    for v in (1.0, 3.0):
        s.update(torch.tensor([v]))
    assert s.summary["mean"].item() == 2.0 and s.summary["std_dev"].item() == 1.0
