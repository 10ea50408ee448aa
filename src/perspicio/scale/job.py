"""Attribute a whole dataset: stream batches, compute shards anywhere, write them once.

Each batch of the data is one shard. A job writes its shards and a manifest into one folder;
run again on the same folder, it reads the manifest and the shards already there and computes
only the missing ones (a crash loses no finished shard, and none is computed twice). Shard
``i`` is computed with seed ``seed + i``, so the output is the same, bit for bit, whichever
backend and however many workers computed it (for the same ``num_threads``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from perspicio._core.call import as_tensors
from perspicio._core.progress import progress
from perspicio._core.validate import ArgumentError
from perspicio.scale import store
from perspicio.scale.backends import Job, Task, check_backend, run_local, run_ray
from perspicio.scale.result import DatasetAttribution

Unpack = Callable[[Any], tuple[Any, Any]]


def default_unpack(batch: Any) -> tuple[Any, Any]:
    """``(inputs, labels)`` of a batch: a tensor is inputs alone; a tuple or list is
    ``(inputs, labels, ...)`` (a DataLoader over a TensorDataset); a dict has keys
    ``"inputs"`` and optionally ``"labels"``."""
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, dict):
        if "inputs" not in batch:
            raise ArgumentError(
                f"a dict batch needs an 'inputs' key (got {sorted(batch)}); or pass unpack="
            )
        return batch["inputs"], batch.get("labels")
    if isinstance(batch, tuple | list) and batch:
        return batch[0], (batch[1] if len(batch) > 1 else None)
    raise TypeError(f"cannot read a batch of type {type(batch).__name__}: pass unpack=")


def attribute_dataset(
    method: Any,
    data: Iterable[Any],
    out: str | Path,
    *,
    target: Any = None,
    format: str = "safetensors",
    backend: str = "local",
    workers: int | None = None,
    num_threads: int | None = None,
    seed: int = 0,
    resume: bool = True,
    show_progress: bool = False,
    unpack: Unpack | None = None,
    **attribute_kwargs: Any,
) -> DatasetAttribution:
    """Attribute every example of ``data`` with ``method`` and write sharded results to ``out``.

    Args:
        method: any attribution object (``IntegratedGradients(model)``, ...).
        data: an iterable of batches (a ``DataLoader``, a list of tensors, a generator).
        out: the folder for the shards and ``manifest.json`` (created if missing).
        target: ``None``, an int, ``"label"`` (each batch's labels), ``"predicted"`` (the
            model's argmax), or a callable ``inputs -> target`` per batch.
        format: ``"safetensors"`` (one file per shard) or ``"zarr"`` (one group per shard).
        backend: ``"local"`` (a process pool; ``workers=0`` runs in this process) or ``"ray"``.
        workers: how many workers (default: one per CPU core).
        num_threads: torch threads per worker (default: torch's own in this process, 1 in a
            pool); results are bit-for-bit equal across backends for the same value.
        seed: shard ``i`` runs with ``torch.manual_seed(seed + i)``.
        resume: compute only the shards missing from ``out``; ``False`` starts afresh.
        show_progress: a progress bar over shards.
        unpack: ``batch -> (inputs, labels)`` for batches :func:`default_unpack` cannot read.
        **attribute_kwargs: passed to ``method.attribute`` (baselines, n_steps, ...).

    Returns:
        A :class:`DatasetAttribution` reading the written shards.

    Example:
        >>> import tempfile, torch
        >>> from perspicio.attr import Saliency
        >>> model = torch.nn.Linear(4, 2)
        >>> batches = [torch.randn(3, 4) for _ in range(2)]
        >>> with tempfile.TemporaryDirectory() as d:
        ...     result = attribute_dataset(Saliency(model), batches, d, target=0, workers=0)
        ...     len(result), result.n_shards
        (6, 2)
    """
    n_workers = check_backend(backend, workers)
    store.check_storage(format)
    if not hasattr(method, "attribute"):
        raise TypeError(f"method must be an attribution object, got {type(method).__name__}")
    if "target" in attribute_kwargs:
        raise ArgumentError("give target= to attribute_dataset itself, not among the kwargs")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = _start_manifest(folder, method, target, format, seed, attribute_kwargs, resume)
    if num_threads is None and (backend == "ray" or n_workers > 0):
        num_threads = 1
    plan = _Plan(folder, manifest, unpack or default_unpack, target, method, seed)
    run = run_ray if backend == "ray" else run_local
    with progress("Dataset attribution", None, show_progress, unit="shard") as bar:
        for shard, values in run(
            Job(method, attribute_kwargs, num_threads), plan.tasks(data), n_workers
        ):
            plan.finish(shard, values)
            bar.update(1)
    manifest["complete"] = True
    store.write_manifest(folder, manifest)
    return DatasetAttribution(folder)


def _start_manifest(
    folder: Path,
    method: Any,
    target: Any,
    storage: str,
    seed: int,
    kwargs: dict[str, Any],
    resume: bool,
) -> dict[str, Any]:
    job = {
        "method": type(method).__name__,
        "arguments": _describe(kwargs),
        "target": _describe(target),
        "storage": storage,
        "seed": seed,
    }
    old = store.read_manifest(folder)
    if old is not None and resume:
        if old["job"] != job:
            raise ArgumentError(
                f"out {str(folder)!r} holds another job ({old['job']}); use another folder or "
                "resume=False to start afresh"
            )
        return old
    if old is not None:
        for i in map(int, old["shards"]):
            path = folder / store.shard_name(i, old["job"]["storage"])
            if path.is_dir():
                import shutil

                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    manifest = {"format": store.FORMAT, "job": job, "shards": {}, "complete": False}
    store.write_manifest(folder, manifest)
    return manifest


class _Plan:
    """Hands out the shards still to compute and writes each one as it comes back."""

    def __init__(
        self,
        folder: Path,
        manifest: dict[str, Any],
        unpack: Unpack,
        target: Any,
        method: Any,
        seed: int,
    ) -> None:
        self.folder, self.manifest, self.unpack = folder, manifest, unpack
        self.target, self.method, self.seed = target, method, seed
        self.storage = manifest["job"]["storage"]
        self.handed_out: dict[int, tuple[int, int, Any]] = {}  # shard -> first row, rows, target

    def tasks(self, data: Iterable[Any]) -> Iterator[Task]:
        """One task per batch not yet written; rows are numbered across the whole dataset."""
        row = 0
        done = {int(k) for k in self.manifest["shards"]}
        for i, batch in enumerate(data):
            inputs, labels = self.unpack(batch)
            n = int(as_tensors(inputs)[0].shape[0])
            if i not in done and store.shard_exists(self.folder, i, self.storage):
                self._record(i, n, row)  # written just before a crash, not yet listed
            elif i not in done:
                tgt = _batch_target(self.target, inputs, labels, self.method)
                self.handed_out[i] = (row, n, tgt)
                yield Task(i, inputs, tgt, self.seed + i)
            row += n

    def finish(self, shard: int, values: tuple[Tensor, ...]) -> None:
        first, n, tgt = self.handed_out.pop(shard)
        target = torch.as_tensor(tgt).expand(n) if isinstance(tgt, int) else tgt
        target = target.detach().cpu() if isinstance(target, Tensor) else None
        index = torch.arange(first, first + n)
        store.write_shard(self.folder, shard, store.Shard(values, index, target), self.storage)
        self._record(shard, n, first)

    def _record(self, shard: int, n: int, first: int) -> None:
        self.manifest["shards"][str(shard)] = {"rows": n, "first_row": first}
        store.write_manifest(self.folder, self.manifest)


def _batch_target(target: Any, inputs: Any, labels: Any, method: Any) -> Any:
    if isinstance(target, str):
        if target == "label":
            if labels is None:
                raise ArgumentError("target='label' needs batches that carry labels")
            return labels
        if target == "predicted":
            with torch.no_grad():
                out = method.forward_func(*as_tensors(inputs))
            return out.argmax(-1)
        raise ArgumentError(
            f"target must be None, an int, 'label', 'predicted' or a callable, got {target!r}"
        )
    if callable(target) and not isinstance(target, Tensor):
        return target(inputs)
    return target


def _describe(value: Any) -> Any:
    """A JSON description of an argument, used to tell jobs apart on resume."""
    if isinstance(value, dict):
        return {k: _describe(v) for k, v in sorted(value.items())}
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, Tensor):
        return value.tolist() if value.numel() <= 64 else f"tensor{tuple(value.shape)}"
    if isinstance(value, list | tuple):
        return [_describe(v) for v in value]
    return getattr(value, "__name__", type(value).__name__)
