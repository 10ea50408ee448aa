"""Smoke tests of the benchmark harness: it runs, it reports, it detects load (no timing asserts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from benchmarks import run, timing, workload

CPU = torch.device("cpu")


@pytest.fixture
def threads():
    """``run.main`` fixes the thread count: give the test process its own back."""
    before = torch.get_num_threads()
    yield str(before)
    torch.set_num_threads(before)


def test_quick_workload_end_to_end(tmp_path: Path, capsys, threads: str) -> None:
    out = tmp_path / "bench.json"
    argv = ["--quick", "--reps", "1", "--only", "tabular/ig", "--json", str(out)]
    assert run.main([*argv, "--threads", threads]) == 0
    printed = capsys.readouterr().out
    assert "| tabular/ig |" in printed and "perspicio/floor" in printed
    payload = json.loads(out.read_text())
    assert payload["machine"]["threads"] == int(threads)
    (record,) = payload["results"]
    assert record["name"] == "tabular/ig"
    for method in ("perspicio", "floor"):
        assert record[method]["median_s"] > 0 and record[method]["reps"] == 1
        assert record[method]["samples"][0]["own_cores"] >= 0
    assert record["perspicio_over_floor"] > 0
    if "captum" in record:  # only when captum is installed
        assert record["captum_over_perspicio"] > 0
    assert run.main(["--table", str(out)]) == 0  # the table again, from the file
    assert "| tabular/ig |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("tabular/ig", {"tabular/ig"}),
        ("resnet18/ig,text/*", {"resnet18/ig", "text/layer_integrated_gradients"}),
        ("*kernel_shap", {"resnet18/kernel_shap", "tabular/kernel_shap"}),
    ],
)
def test_select(pattern: str, expected: set[str]) -> None:
    assert {w.name for w in run.select(pattern)} == expected


def test_every_workload_is_listed(capsys) -> None:
    assert run.main(["--list"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("floor:") == len(run.WORKLOADS) >= 20
    assert run.main(["--only", "no-such-workload"]) == 2


def test_missing_class_is_reported_as_skipped() -> None:
    assert workload.load("perspicio", "attr", "NoSuchMethod") == workload.NOT_IMPLEMENTED
    assert workload.explainer("perspicio", "NoSuchMethod", (nn.Identity(),), torch.ones(1)) == (
        workload.NOT_IMPLEMENTED
    )
    bench = workload.Bench(
        workload.NOT_IMPLEMENTED, workload.NOT_IMPLEMENTED, lambda: None, "fwd 1 row"
    )
    w = workload.Workload("fake/missing", "Missing", "nothing", lambda cfg: bench)
    args = run.parse(["--quick", "--reps", "1"])
    result = run.run_workload(w, workload.Config(CPU, quick=True), args, timing.Timer(CPU))
    assert result.times == {} and result.reasons["perspicio"] == workload.NOT_IMPLEMENTED
    assert "skipped (not implemented yet)" in run.table([result])


def test_failing_library_call_is_reported_not_raised() -> None:
    def broken() -> None:
        raise RuntimeError("unsupported module")

    bench = workload.Bench(lambda: None, broken, lambda: None, "fwd 1 row")
    w = workload.Workload("fake/broken", "Broken", "nothing", lambda cfg: bench)
    args = run.parse(["--quick", "--reps", "2"])
    result = run.run_workload(w, workload.Config(CPU, quick=True), args, timing.Timer(CPU))
    assert "unsupported module" in result.reasons["captum"]
    assert set(result.times) == {"perspicio", "floor"}
    assert result.times["perspicio"].reps == 2


def test_summary_uses_clean_repetitions_and_flags_load() -> None:
    clean = [timing.Sample(1.0, 1.0, 0.0, False), timing.Sample(2.0, 1.0, 0.1, False)]
    summary = timing.Summary.of([*clean, timing.Sample(9.0, 0.5, 1.5, True)])
    assert summary.median == 1.5 and summary.loaded == 1 and not summary.contaminated
    assert summary.other_cores == 1.5
    loaded = timing.Summary.of(
        [timing.Sample(3.0, 0.5, 1.0, True), timing.Sample(5.0, 0.5, 1.2, True)]
    )
    assert loaded.median == 4.0 and loaded.contaminated


def test_timer_retries_a_loaded_repetition_then_flags_it() -> None:
    # a negative allowance makes every repetition count as loaded
    timer = timing.Timer(CPU, max_other=-1.0, retries=2, pause=0.0)
    sample = timer.sample(lambda: None, 3)
    assert sample.loaded and sample.retries == 2
    plain = timing.measure_once(lambda: sum(range(1000)), 5, CPU, max_other=float("inf"))
    assert plain.seconds > 0 and not plain.loaded
    assert plain.other_cores is None or plain.other_cores >= 0


def test_peak_memory_sees_an_allocation() -> None:
    peak = timing.peak_memory_mib(lambda: torch.ones(2**23).add_(1), CPU)  # 32 MiB
    if peak is None:
        pytest.skip("no /proc/self/clear_refs here")
    assert peak >= 16


class _Rows(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.lin = nn.Linear(3, 2)

    def forward(self, x: Tensor) -> Tensor:
        self.seen += x.shape[0]
        return self.lin(x)


def test_floors_evaluate_the_rows_they_claim() -> None:
    model = _Rows()
    workload.forward_floor(model, torch.ones(1, 3), rows=10, chunk=4)()
    assert model.seen == 10
    (grad,) = workload.grad_floor(workload.identity, model, torch.ones(5, 3), target=1)()
    assert grad.shape == (5, 3) and torch.allclose(grad, model.lin.weight[1].expand(5, 3))


def test_floor_batches_at_a_measured_pass_size() -> None:
    model, x = _Rows(), torch.ones(1, 3)
    chunk = workload.fastest_chunk(model, x, rows=6, candidates=(2, 4, 64), budget_rows=8)
    assert chunk in (2, 4, 6)  # 64 is capped at the 6 rows needed
    model.seen = 0
    floor, doc = workload.perturbation_floor(model, x, 6, (2, 4, 64), 8)
    assert model.seen == 0 and doc == f"fwd 6 rows, {chunk} per pass"  # calibrated once
    floor()
    assert model.seen == 6
