"""Where shards are computed: in this process, in a local process pool, or on Ray workers.

Every backend runs the same :func:`compute_shard` on the same batches with the same seed and
thread count, so the results are the same bit for bit whichever backend computed them. Each
worker holds one replica of the attribution method (and so of the model), sent once when the
worker starts; results come back in any order and are written as they arrive.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import as_tensors
from perspicio._core.validate import ArgumentError

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class Task:
    """One shard to compute: its number, the inputs, the target and the extra forward args."""

    shard: int
    inputs: Any
    target: Any
    seed: int


@dataclass(frozen=True)
class Job:
    """What every worker needs: the method, the keyword arguments and the thread count."""

    method: Any
    kwargs: dict[str, Any]
    num_threads: int | None


def compute_shard(job: Job, task: Task) -> tuple[int, tuple[Tensor, ...]]:
    """The attributions of one shard (seeded per shard, so stochastic methods repeat)."""
    if job.num_threads is not None:
        torch.set_num_threads(job.num_threads)
    torch.manual_seed(task.seed)
    kwargs = dict(job.kwargs)
    if task.target is not None:
        kwargs["target"] = task.target
    attr = job.method.attribute(task.inputs, **kwargs)
    if kwargs.get("return_convergence_delta"):
        attr = attr[0]
    return task.shard, tuple(t.detach().cpu() for t in as_tensors(attr, "attributions"))


Results = Iterator[tuple[int, tuple[Tensor, ...]]]


def run_local(job: Job, tasks: Iterator[Task], workers: int) -> Results:
    """In this process (``workers=0``) or in a pool of spawned processes."""
    if workers == 0:
        for task in tasks:
            yield compute_shard(job, task)
        return
    ctx = get_context("spawn")  # forking a process that has run torch threads can hang
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(job,)) as pool:
        yield from _bounded(lambda t: pool.submit(_compute_in_worker, t), tasks, 2 * workers)


_JOB: Job | None = None


def _init(job: Job) -> None:
    global _JOB
    _JOB = job


def _compute_in_worker(task: Task) -> tuple[int, tuple[Tensor, ...]]:
    assert _JOB is not None, "worker initialiser did not run"
    return compute_shard(_JOB, task)


def _bounded(submit: Callable[[Task], Future[Any]], tasks: Iterator[Task], limit: int) -> Results:
    """Keep at most ``limit`` shards in flight (bounded memory), yield each as it finishes."""
    pending: set[Future[Any]] = set()
    for task in tasks:
        pending.add(submit(task))
        if len(pending) >= limit:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for f in done:
            yield f.result()


def run_ray(job: Job, tasks: Iterator[Task], workers: int) -> Results:
    """On a pool of Ray actors, one model replica each (a GPU each where Ray has GPUs).

    Uses the running Ray instance, or starts a local one with ``workers`` CPUs.
    """
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise ImportError("backend='ray' needs Ray: pip install 'perspicio[scale]'") from None
    if not ray.is_initialized():
        ray.init(num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= workers else 0
    worker_cls = ray.remote(num_cpus=1, num_gpus=gpus)(_RayWorker)
    job_ref = ray.put(job)
    pool = ActorPool([worker_cls.remote(job_ref) for _ in range(max(workers, 1))])
    in_flight = 0
    for task in tasks:
        pool.submit(lambda actor, t: actor.compute.remote(t), task)
        in_flight += 1
        if in_flight >= 2 * workers:
            yield pool.get_next_unordered()
            in_flight -= 1
    while pool.has_next():
        yield pool.get_next_unordered()


class _RayWorker:
    def __init__(self, job: Job) -> None:
        method = job.method
        if torch.cuda.is_available():  # a replica on this worker's GPU
            model = getattr(method, "forward_func", None)
            if isinstance(model, torch.nn.Module):
                model.to("cuda")
        self.job = job

    def compute(self, task: Task) -> tuple[int, tuple[Tensor, ...]]:
        if torch.cuda.is_available():
            task = Task(task.shard, _to(task.inputs, "cuda"), _to(task.target, "cuda"), task.seed)
        return compute_shard(self.job, task)


def _to(value: Any, device: str) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(_to(v, device) for v in value)
    return value


def check_backend(backend: str, workers: int | None) -> int:
    """The number of workers to use (``None``: one per CPU core)."""
    if backend not in BACKENDS:
        raise ArgumentError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if workers is None:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ArgumentError(f"workers must be a non-negative int or None, got {workers!r}")
    if backend == "ray" and workers == 0:
        raise ArgumentError("backend='ray' needs workers >= 1")
    return workers
