"""Background jobs: long attributions that report progress and can be cancelled.

A job runs in its own (non-daemon) thread. The work checks its :class:`Job` between steps and
inside the model's forward pass (the model is wrapped in :class:`Watched`), so a cancelled
job stops within one forward pass. A job nobody has asked about for ``orphan_seconds``
(the page or widget that started it went away) cancels itself.

Every running job is cancelled, and its thread joined, when the server stops, when a widget
closes and at interpreter exit (before Python joins its threads): a thread still inside
torch while the interpreter finalises aborts the process ("terminate called without an
active exception"), which is what Ctrl-C during a long attribution used to do.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from perspicio.insights.store import InsightsError

MAX_KEPT = 64  # finished jobs remembered for their result
MAX_RUNNING = 16  # background jobs at once; more are refused (each holds a thread)
ORPHAN_SECONDS = 120.0  # background tabs may poll only once a minute


class Cancelled(Exception):
    """Raised inside a job's work when the job was cancelled."""


class Job:
    """One unit of work with progress, a result or an error, and a cancel flag.

    Attributes:
        id: An unguessable identifier.
        kind: What the job does (``fetch``, ``reattribute``).
        state: ``running``, ``done``, ``failed`` or ``cancelled``.
        progress: Fraction of the work done, in [0, 1].
        message: What the job is doing now, for the user.
    """

    def __init__(self, kind: str, owner: str | None = None) -> None:
        self.id = secrets.token_urlsafe(12)
        self.kind = kind
        self.owner = owner
        self.state = "running"
        self.progress = 0.0
        self.message = "starting"
        self.result: Any = None
        self.error: str | None = None
        self.status = 200
        self.cancel_event = threading.Event()
        self.last_seen = time.monotonic()
        self.thread: threading.Thread | None = None
        self._steps = (0.0, 1.0)  # the share of the progress bar the current step fills
        self._rows = 0
        self._expected_rows = 1
        self.rows_hint = 1  # model inputs one attribution step is expected to evaluate

    def cancel(self) -> None:
        """Ask the work to stop at its next check."""
        self.cancel_event.set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job was cancelled or abandoned."""
        if time.monotonic() - self.last_seen > ORPHAN_SECONDS:
            self.cancel_event.set()
        if self.cancel_event.is_set():
            raise Cancelled

    def step(
        self, start: float, end: float, message: str, expected_rows: int | None = None
    ) -> None:
        """Begin a step filling progress ``start..end``, expecting ``expected_rows`` inputs.

        ``None`` expects :attr:`rows_hint` rows.
        """
        self.check()
        self._steps = (start, end)
        self._rows = 0
        self._expected_rows = max(1, self.rows_hint if expected_rows is None else expected_rows)
        self.progress, self.message = start, message

    def count_rows(self, rows: int) -> None:
        """Record ``rows`` examples through the model (called from :class:`Watched`)."""
        self.check()
        self._rows += rows
        start, end = self._steps
        self.progress = start + (end - start) * min(1.0, self._rows / self._expected_rows)

    def describe(self) -> dict[str, Any]:
        """The job's state as sent to the frontend."""
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "progress": round(min(1.0, max(0.0, self.progress)), 4),
            "message": self.message,
            "result": self.result,
            "error": self.error,
            "status": self.status,
        }


class Watched(nn.Module):
    """``model`` behind a forward that counts inputs for progress and stops cancelled jobs.

    Args:
        model: The user's model; it is referenced, never modified.
        job: The job to report to.
    """

    def __init__(self, model: nn.Module, job: Job) -> None:
        super().__init__()
        self.inner = model
        self._job = job

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Check for cancellation, count the batch, run the model."""
        first = next((a for a in args if isinstance(a, Tensor)), None)
        self._job.count_rows(int(first.shape[0]) if first is not None and first.dim() else 1)
        return self.inner(*args, **kwargs)


class JobManager:
    """Starts, tracks and cancels jobs; cancels them all at interpreter exit.

    Example:
        >>> from perspicio.insights.jobs import JobManager
        >>> manager = JobManager()
        >>> job = manager.start("answer", lambda job: 6 * 7)
        >>> job.thread.join()
        >>> job.state, job.result
        ('done', 42)
    """

    _counter = itertools.count()

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        register = getattr(threading, "_register_atexit", None)
        ref = weakref.ref(self)

        def cancel_at_exit() -> None:
            manager = ref()
            if manager is not None:
                manager.cancel_all()

        # threading's own exit hook runs before non-daemon threads are joined; atexit after
        with contextlib.suppress(RuntimeError):  # the interpreter is already shutting down
            (register or atexit.register)(cancel_at_exit)

    def start(self, kind: str, work: Callable[[Job], Any], owner: str | None = None) -> Job:
        """Run ``work(job)`` in a new thread; its return value becomes the job's result."""
        job = Job(kind, owner)
        with self._lock:
            running = sum(j.state == "running" for j in self._jobs.values())
            if running >= MAX_RUNNING:
                raise InsightsError(
                    429, f"{running} jobs are running already; cancel one or wait for it to end"
                )
            self._jobs[job.id] = job
            self._forget_old()
        job.thread = threading.Thread(
            target=self._run,
            args=(job, work),
            name=f"perspicio-job-{next(self._counter)}",
            daemon=False,
        )
        job.thread.start()
        return job

    def run(self, kind: str, work: Callable[[Job], Any]) -> Any:
        """Run ``work(job)`` in this thread, cancellable like a background job; its result."""
        job = Job(kind)
        job.last_seen = float("inf")  # someone is waiting for it: never an orphan
        with self._lock:
            self._jobs[job.id] = job
        try:
            self._run(job, work)
        finally:
            with self._lock:
                self._jobs.pop(job.id, None)
        if job.state == "cancelled":
            raise InsightsError(503, "the request was cancelled: the explorer is stopping")
        if job.state == "failed":
            raise InsightsError(job.status, job.error or "failed")
        return job.result

    def _run(self, job: Job, work: Callable[[Job], Any]) -> None:
        try:
            job.result = work(job)
            job.state, job.progress, job.message = "done", 1.0, "done"
        except Cancelled:
            job.state, job.message = "cancelled", "cancelled"
        except InsightsError as exc:
            job.state, job.error, job.status = "failed", exc.message, exc.status
        except Exception as exc:  # a bug must reach the user as a message, not kill the thread
            job.state, job.error, job.status = "failed", f"{type(exc).__name__}: {exc}", 500

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.state != "running"]
        for key in finished[: max(0, len(self._jobs) - MAX_KEPT)]:
            del self._jobs[key]

    def get(self, job_id: str) -> Job:
        """The job with ``job_id`` (and note that someone is watching it), or a 404."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise InsightsError(
                404, f"no job {job_id[:40]!r} (finished long ago, or never started)"
            )
        job.last_seen = max(job.last_seen, time.monotonic())
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel one job (a finished job stays as it was)."""
        job = self.get(job_id)
        job.cancel()
        return job

    def cancel_all(self, owner: str | None = None, timeout: float = 10.0) -> None:
        """Cancel every running job (of ``owner``, when given) and wait for their threads."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if owner is None or j.owner == owner]
        for job in jobs:
            job.cancel()
        deadline = time.monotonic() + timeout
        for job in jobs:
            if job.thread is not None and job.thread is not threading.current_thread():
                job.thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def running(self) -> list[Job]:
        """The jobs still running."""
        with self._lock:
            return [j for j in self._jobs.values() if j.state == "running"]
