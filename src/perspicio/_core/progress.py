"""Progress reporting for ``show_progress=True``: a tqdm bar, or Captum's plain stderr line."""

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


class _PlainBar:
    """The bar without tqdm, in Captum's plain-text form: ``"\r<desc>: 60% 3/5"`` on stderr
    (dots, one per unit, when the total is unknown), redrawn at most every ``MIN_INTERVAL``
    seconds and once more, ending the line, when closed."""

    MIN_INTERVAL = 0.5

    def __init__(self, desc: str, total: int | None) -> None:
        self.desc, self.total, self.count = desc, total, 0
        self._last = time.monotonic()
        self._closed = False
        self._draw()

    def _draw(self, end: str = "") -> None:
        if self.total:
            done = f"{100 * self.count // self.total}% {self.count}/{self.total}"
        else:
            done = "." * self.count
        sys.stderr.write(f"\r{self.desc}: {done}{end}")
        sys.stderr.flush()

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self._last >= self.MIN_INTERVAL:
            self._last = now
            self._draw()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._draw(end="\n")


def _bar(desc: str, total: int | None, unit: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _PlainBar(desc, total)
    return tqdm(desc=desc, total=total, unit=unit, mininterval=_PlainBar.MIN_INTERVAL)


@contextmanager
def progress(
    desc: str, total: int | None, enabled: bool = True, unit: str = "it"
) -> Iterator[Progress]:
    """A progress bar for the block (closed on exit, also after an exception).

    The bar is Captum's: ``"<desc>: "`` then a tqdm bar, or without tqdm a plain
    ``"<desc>: 60% 3/5"`` line on stderr, so that scripts reading Captum's output read ours.

    Args:
        desc: what is being computed; attributions use ``"<Method name> attribution"``.
        total: how many units the block will report, or ``None`` if unknown.
        enabled: ``False`` gives a bar that shows nothing (``show_progress=False``).
        unit: the name of one unit of work (tqdm's rate, ``it/s`` by default).
    """
    bar: Any = _bar(desc, total, unit) if enabled else _Silent()
    try:
        yield bar
    finally:
        bar.close()
