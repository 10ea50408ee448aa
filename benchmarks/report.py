"""The results: one record per workload, the machine's description, the markdown table."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.timing import Sample, Summary

METHODS = ("perspicio", "floor", "captum")


@dataclass
class Result:
    """One workload's outcome: a summary per method that ran, a reason per method that did not."""

    name: str
    method: str
    rows: str = ""
    times: dict[str, Summary] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    peak_mib: dict[str, float | None] = field(default_factory=dict)

    def median(self, method: str) -> float | None:
        s = self.times.get(method)
        return s.median if s else None

    def ratio(self, top: str, bottom: str) -> float | None:
        a, b = self.median(top), self.median(bottom)
        return a / b if a is not None and b else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "method": self.method,
            "floor_rows": self.rows,
            "reasons": self.reasons,
            "peak_mib": self.peak_mib,
            "perspicio_over_floor": self.ratio("perspicio", "floor"),
            "captum_over_perspicio": self.ratio("captum", "perspicio"),
            "captum_over_floor": self.ratio("captum", "floor"),
        }
        for method, s in self.times.items():
            out[method] = {
                "median_s": s.median,
                "reps": s.reps,
                "loaded_reps": s.loaded,
                "max_other_cores": s.other_cores,
                "samples": [asdict(x) for x in s.samples],
            }
        return out

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Result:
        """A result written by ``to_json`` (to print the table of several runs together)."""
        times = {}
        for method in METHODS:
            if method in record:
                samples = [Sample(**x) for x in record[method]["samples"]]
                times[method] = Summary.of(samples)
        return cls(
            record["name"],
            record["method"],
            record.get("floor_rows", ""),
            times,
            record.get("reasons", {}),
            record.get("peak_mib", {}),
        )


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _revision() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
            check=False,
        )
        return done.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="minutes"),
        "cpu": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "python": platform.python_version(),
        "perspicio_revision": _revision(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        import captum

        info["captum"] = captum.__version__
    except ImportError:
        info["captum"] = None
    return info


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _load_note(r: Result) -> str:
    parts = []
    for method, s in r.times.items():
        if s.loaded:
            flag = "ALL LOADED" if s.contaminated else f"{s.loaded}/{s.reps} loaded"
            parts.append(f"{method} {flag}")
    worst = [s.other_cores for s in r.times.values() if s.other_cores is not None]
    peak = f"others ≤ {max(worst):.2f} cores" if worst else "load unknown"
    return "; ".join([*parts, peak]) if parts else f"clean ({peak})"


def _memory(r: Result) -> str:
    if not r.peak_mib:
        return "-"
    return " / ".join("-" if r.peak_mib.get(m) is None else f"{r.peak_mib[m]:.0f}" for m in METHODS)


def table(results: list[Result]) -> str:
    """The results as a markdown table."""
    head = (
        "| workload | perspicio | floor | perspicio/floor | captum | captum/perspicio "
        "| captum/floor | peak MiB (persp / floor / captum) | load |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in results:
        persp = r.reasons.get("perspicio") or seconds(r.median("perspicio"))
        captum = r.reasons.get("captum") or seconds(r.median("captum"))
        lines.append(
            f"| {r.name} | {persp} | {seconds(r.median('floor'))} "
            f"| {times(r.ratio('perspicio', 'floor'))} | {captum} "
            f"| {times(r.ratio('captum', 'perspicio'))} | {times(r.ratio('captum', 'floor'))} "
            f"| {_memory(r)} | {_load_note(r)} |"
        )
    return head + "\n".join(lines) + "\n"


def header(info: dict[str, Any]) -> str:
    """The machine line printed above the table."""
    gpu = f", GPU {info['gpu']}" if "gpu" in info else ""
    return (
        f"{info['date']} · {info['cpu']} ({info['cpu_cores']} cores{gpu}) · device "
        f"{info['device']} · torch {info['torch']}, {info['threads']} threads · "
        f"captum {info['captum'] or 'not installed'} · perspicio @ {info['perspicio_revision']}"
    )
