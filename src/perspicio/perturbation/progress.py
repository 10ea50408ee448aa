"""Progress reporting for ``show_progress=True``: a tqdm bar, or a plain stderr line without it."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Progress(Protocol):
    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class _StderrBar:
    """A minimal stand-in for tqdm: rewrites one stderr line at most ten times a second."""

    def __init__(self, desc: str, total: int | None, unit: str) -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.count = 0
        self._start = self._last = time.monotonic()
        self._write()

    def _write(self, end: str = "") -> None:
        of = f"/{self.total}" if self.total is not None else ""
        elapsed = time.monotonic() - self._start
        sys.stderr.write(f"\r{self.desc}: {self.count}{of} {self.unit}s [{elapsed:.1f}s]{end}")
        sys.stderr.flush()

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self._last >= 0.1 or (self.total is not None and self.count >= self.total):
            self._last = now
            self._write()

    def close(self) -> None:
        self._write(end="\n")


def _bar(desc: str, total: int | None, unit: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _StderrBar(desc, total, unit)
    return tqdm(desc=desc, total=total, unit=unit)


@contextmanager
def progress(
    desc: str, total: int | None, enabled: bool = True, unit: str = "perturbation"
) -> Iterator[Progress]:
    """A progress bar for the block (closed on exit, also after an exception).

    Args:
        desc: what is being computed, e.g. ``"Feature Ablation: 64 examples x 100 features"``.
        total: how many units the block will report, or ``None`` if unknown.
        enabled: ``False`` gives a bar that shows nothing (``show_progress=False``).
        unit: the name of one unit of work.
    """
    bar: Any = _bar(desc, total, unit) if enabled else _Silent()
    try:
        yield bar
    finally:
        bar.close()
