"""Timing with load detection, and peak-memory measurement.

A repetition runs a callable ``number`` times (enough to last a few hundred milliseconds) and
records the wall time, this process's CPU time and, from ``/proc/stat``, the CPU time every
other process (and the hypervisor, as steal time) took on the machine meanwhile. A repetition
during which the others used more than ``max_other`` cores on average is *loaded*: it is
retried after a pause, and kept but flagged when the retries run out.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

_STAT = Path("/proc/stat")
_TICK = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def busy_seconds() -> float | None:
    """Machine-wide non-idle CPU seconds (steal included) since boot; None off Linux."""
    try:
        fields = _STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
    return (user + nice + system + irq + softirq + steal) * _TICK


def other_cores_now(seconds: float = 1.0) -> float | None:
    """Cores used by other processes over the next ``seconds`` (this one sleeps)."""
    start_busy, start_cpu = busy_seconds(), time.process_time()
    t0 = time.perf_counter()
    time.sleep(seconds)
    wall = time.perf_counter() - t0
    end_busy = busy_seconds()
    if start_busy is None or end_busy is None:
        return None
    return max(0.0, end_busy - start_busy - (time.process_time() - start_cpu)) / wall


@dataclass
class Sample:
    """One repetition: seconds per call, and the machine's load while it ran."""

    seconds: float
    own_cores: float  # this process's CPU seconds / wall seconds
    other_cores: float | None  # other processes' CPU seconds / wall seconds
    loaded: bool
    retries: int = 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_once(
    fn: Callable[[], Any], number: int, device: torch.device, max_other: float
) -> Sample:
    """Time ``number`` calls of ``fn`` and the other processes' CPU use meanwhile."""
    _sync(device)
    busy0, cpu0, t0 = busy_seconds(), time.process_time(), time.perf_counter()
    for _ in range(number):
        fn()
    _sync(device)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    busy1 = busy_seconds()
    other = None
    if busy0 is not None and busy1 is not None and wall > 0:
        # /proc/stat counts whole clock ticks per CPU: forgive one tick of rounding each
        other = max(0.0, busy1 - busy0 - cpu - _TICK * (os.cpu_count() or 1)) / wall
    loaded = other is not None and other > max_other
    return Sample(wall / number, cpu / max(wall, 1e-9), other, loaded)


@dataclass
class Timer:
    """Measures repetitions, retrying loaded ones after a pause."""

    device: torch.device
    max_other: float = 0.2
    retries: int = 2
    pause: float = 1.0
    log: Callable[[str], None] = field(default=lambda _msg: None)

    def sample(self, fn: Callable[[], Any], number: int) -> Sample:
        s = measure_once(fn, number, self.device, self.max_other)
        tries = 0
        while s.loaded and tries < self.retries:
            tries += 1
            self.log(f"    loaded repetition ({s.other_cores:.2f} other cores), retry {tries}")
            time.sleep(self.pause * tries)
            s = measure_once(fn, number, self.device, self.max_other)
        s.retries = tries
        return s


def calls_per_repetition(first_call: float, min_seconds: float) -> int:
    """How many calls make a repetition last at least ``min_seconds``."""
    if first_call <= 0:
        return 1000
    return max(1, min(1000, int(min_seconds / first_call + 0.999)))


@dataclass
class Summary:
    """The median of the clean repetitions (of all of them when none is clean)."""

    median: float
    reps: int
    loaded: int
    other_cores: float | None
    samples: list[Sample]

    @classmethod
    def of(cls, samples: list[Sample]) -> Summary:
        clean = [s for s in samples if not s.loaded]
        use = clean or samples
        others = [s.other_cores for s in samples if s.other_cores is not None]
        return cls(
            median=statistics.median(s.seconds for s in use),
            reps=len(samples),
            loaded=len(samples) - len(clean),
            other_cores=max(others) if others else None,
            samples=samples,
        )

    @property
    def contaminated(self) -> bool:
        """True when every repetition ran under load (the median is then unreliable)."""
        return self.loaded == self.reps


def _high_water_kib() -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmHWM:\s+(\d+)", text)
    return int(found.group(1)) if found else None


def _resident_kib() -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmRSS:\s+(\d+)", text)
    return int(found.group(1)) if found else None


def _release_free_memory() -> None:
    """glibc keeps freed memory mapped for reuse: return it (a no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def peak_memory_mib(fn: Callable[[], Any], device: torch.device) -> float | None:
    """Peak memory one call of ``fn`` adds on top of what was in use before it.

    On CUDA the caching allocator's peak; on CPU the process's resident high-water mark,
    reset through ``/proc/self/clear_refs`` (Linux), after handing the C allocator's free
    memory back to the system so that reusing it shows. None where neither is available.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        allocated = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - allocated) / 2**20
    _release_free_memory()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    before = _resident_kib()
    fn()
    peak = _high_water_kib()
    if before is None or peak is None:
        return None
    return max(0, peak - before) / 1024
