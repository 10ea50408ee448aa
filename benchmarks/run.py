"""Run the benchmarks: perspicio against Captum and against the model's own floor.

    python benchmarks/run.py [--only PATTERN] [--json FILE] [--reps N] [--quick]

Each workload is warmed up, then timed as the median of ``--reps`` repetitions per method;
the methods (perspicio, the floor, Captum) alternate within each repetition so that machine
drift affects them alike. Repetitions during which other processes used the CPU are retried,
then flagged (see ``benchmarks/timing.py``). See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import fnmatch
import json
import os
import pstats
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import the package from the repository root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import torch
from torch.profiler import ProfilerActivity

from benchmarks import concept, influence, llm, resnet, tabular, text
from benchmarks.report import METHODS, Result, header, machine, table
from benchmarks.timing import (
    Summary,
    Timer,
    calls_per_repetition,
    other_cores_now,
    peak_memory_mib,
)
from benchmarks.workload import Bench, Config, Workload

SLOW_CALL = 5.0  # seconds: workloads with a slower call get --heavy-reps repetitions
WORKLOADS: list[Workload] = [
    *resnet.WORKLOADS,
    *text.WORKLOADS,
    *tabular.WORKLOADS,
    *influence.WORKLOADS,
    *concept.WORKLOADS,
    *llm.WORKLOADS,
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def select(patterns: str | None) -> list[Workload]:
    """Workloads whose name matches any comma-separated glob or substring."""
    if not patterns:
        return list(WORKLOADS)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    return [w for w in WORKLOADS if any(fnmatch.fnmatch(w.name, p) or p in w.name for p in wanted)]


def _timed_call(fn: Callable[[], Any], device: torch.device, memory: bool) -> tuple[float, Any]:
    """One call's wall time and, when asked, its peak memory (MiB)."""
    t0 = time.perf_counter()
    peak = None
    if memory:
        peak = peak_memory_mib(fn, device)
    else:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return time.perf_counter() - t0, peak


Estimates = dict[str, tuple[Callable[[], Any], float]]


def _warm(
    bench: Bench, result: Result, args: argparse.Namespace, cfg: Config, memory: bool
) -> Estimates:
    """Warm every runnable method up and estimate its time; drop the ones that fail.

    A call under SLOW_CALL seconds is made twice and the second one is the estimate. Peak memory, when
    asked, is taken from the last warm-up call.
    """
    calls: dict[str, Callable[[], Any]] = {"floor": bench.floor}
    for name, entry in (("perspicio", bench.perspicio), ("captum", bench.captum)):
        if isinstance(entry, str):
            result.reasons[name] = entry
        elif name == "captum" and args.no_captum:
            result.reasons[name] = "skipped (--no-captum)"
        else:
            calls[name] = entry
    if "perspicio" not in calls and not args.with_missing:
        return {}
    estimates: Estimates = {}
    for name, fn in calls.items():
        try:
            first, peak = _timed_call(fn, cfg.device, memory)
            if first < SLOW_CALL:
                first, peak = _timed_call(fn, cfg.device, memory)
        except Exception as err:  # a library that cannot run this workload
            result.reasons[name] = f"error: {type(err).__name__}: {str(err)[:80]}"
            log(f"  {name}: {result.reasons[name]}")
            continue
        estimates[name] = (fn, first)
        if memory:
            result.peak_mib[name] = peak
    return estimates


def run_workload(w: Workload, cfg: Config, args: argparse.Namespace, timer: Timer) -> Result:
    result = Result(w.name, w.method)
    try:
        bench = w.build(cfg)
    except Exception as err:
        result.reasons["perspicio"] = f"error building: {type(err).__name__}: {err}"
        return result
    result.rows = bench.rows
    memory = args.memory or (w.heavy and not cfg.quick)
    estimates = _warm(bench, result, args, cfg, memory)
    if not estimates:
        return result
    slowest = max(t for _, t in estimates.values())
    reps = min(args.reps, args.heavy_reps) if slowest > SLOW_CALL else args.reps
    numbers = {m: calls_per_repetition(t, args.min_rep_seconds) for m, (_, t) in estimates.items()}
    order = [m for m in METHODS if m in estimates]
    samples: dict[str, list] = {m: [] for m in order}
    for rep in range(reps):
        shift = rep % len(order)  # rotate who goes first
        for m in order[shift:] + order[:shift]:
            samples[m].append(timer.sample(estimates[m][0], numbers[m]))
    result.times = {m: Summary.of(s) for m, s in samples.items()}
    return result


def profile(w: Workload, cfg: Config, which: str) -> None:
    """Print where one call of ``which`` spends its time: by operator, then by Python function."""
    bench = w.build(cfg)
    fn = getattr(bench, which)
    if isinstance(fn, str):
        log(f"{w.name}: {which} {fn}")
        return
    fn()  # warm-up
    activities = [ProfilerActivity.CPU]
    if cfg.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        fn()
    print(f"## {w.name} ({which}): operators by self CPU time\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    python = cProfile.Profile()
    python.runcall(fn)
    print(f"## {w.name} ({which}): Python functions by own time\n")
    pstats.Stats(python, stream=sys.stdout).sort_stats("tottime").print_stats(15)


def wait_quiet(limit: float, max_other: float, window: float = 5.0, needed: int = 3) -> bool:
    """Wait until other processes used under ``max_other`` cores ``needed`` windows running."""
    deadline, quiet = time.monotonic() + limit, 0
    while time.monotonic() < deadline:
        others = other_cores_now(window)
        if others is None:
            return False
        quiet = quiet + 1 if others <= max_other else 0
        if quiet >= needed:
            return True
        log(f"waiting for a quiet machine: others use {others:.2f} cores")
    log("the machine never got quiet: measuring under load")
    return False


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", help="comma-separated name globs or substrings, e.g. 'tabular/*'")
    p.add_argument("--json", type=Path, help="write every measurement to this file")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per method")
    p.add_argument(
        "--heavy-reps", type=int, default=3, help="cap on reps when a call takes over 5 s"
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: check the harness")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto")
    p.add_argument("--no-captum", action="store_true", help="leave Captum out")
    p.add_argument(
        "--with-missing",
        action="store_true",
        help="time Captum and the floor even where perspicio lacks the class",
    )
    p.add_argument("--memory", action="store_true", help="peak memory for every workload")
    p.add_argument(
        "--min-rep-seconds", type=float, help="repeat calls up to this (0.3; --quick 0.02)"
    )
    p.add_argument("--max-other-load", type=float, default=0.2, help="cores others may use")
    p.add_argument("--retries", type=int, help="re-runs of a loaded repetition (2; --quick 0)")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for other processes to leave the CPU",
    )
    p.add_argument("--list", action="store_true", help="list the workloads and their floors")
    p.add_argument(
        "--table",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="print the table of earlier --json runs instead of measuring",
    )
    p.add_argument(
        "--profile", choices=("perspicio", "captum", "floor"), help="profile instead of timing"
    )
    args = p.parse_args(argv)
    if args.min_rep_seconds is None:
        args.min_rep_seconds = 0.02 if args.quick else 0.3
    if args.retries is None:
        args.retries = 0 if args.quick else 2
    return args


def _device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def print_tables(files: list[Path]) -> None:
    """One table of the results in earlier ``--json`` files, with each run's machine line."""
    results = []
    for path in files:
        payload = json.loads(path.read_text())
        print(f"- {path.name}: {header(payload['machine'])}")
        results += [Result.from_json(r) for r in payload["results"]]
    print()
    print(table(results))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.table:
        print_tables(args.table)
        return 0
    chosen = select(args.only)
    if args.list:
        for w in chosen:
            print(f"{w.name}: {w.method}\n    floor: {w.floor}")
        return 0
    if not chosen:
        log(f"no workload matches {args.only!r}")
        return 2
    torch.set_num_threads(args.threads)
    # Captum warns on every call about inputs not requiring grad and hooks on activations
    warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\.")
    cfg = Config(_device(args.device), quick=args.quick)
    if args.profile:
        for w in chosen:
            profile(w, cfg, args.profile)
        return 0
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet, args.max_other_load)
    info = machine(cfg.device)
    info["loadavg_start"] = os.getloadavg()
    log(header(info))
    timer = Timer(cfg.device, args.max_other_load, args.retries, log=log)
    results = []
    for w in chosen:
        log(f"{w.name}: {w.method}")
        t0 = time.perf_counter()
        results.append(run_workload(w, cfg, args, timer))
        log(f"  done in {time.perf_counter() - t0:.1f} s")
    info["loadavg_end"] = os.getloadavg()
    print(header(info) + "\n")
    print(table(results))
    if args.json:
        payload = {"machine": info, "results": [r.to_json() for r in results]}
        args.json.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
