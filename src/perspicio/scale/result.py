"""Reading a dataset attribution written by :func:`~perspicio.scale.attribute_dataset`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from perspicio._core.validate import ArgumentError
from perspicio.result import Explanation
from perspicio.scale import store
from perspicio.summary import Stat, Summarizer


class DatasetAttribution:
    """The shards and manifest in one folder, read lazily, one shard at a time.

    Attributes:
        folder: where the shards and ``manifest.json`` are.
        manifest: the job (method, arguments, target, storage, seed) and the shards written.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        manifest = store.read_manifest(self.folder)
        if manifest is None:
            raise ArgumentError(f"{str(self.folder)!r} holds no dataset attribution (no manifest)")
        self.manifest = manifest

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    @property
    def n_shards(self) -> int:
        return len(self.manifest["shards"])

    def __len__(self) -> int:
        return sum(s["rows"] for s in self.manifest["shards"].values())

    def shard(self, i: int) -> store.Shard:
        if str(i) not in self.manifest["shards"]:
            raise ArgumentError(f"shard {i} was not written (shards: 0..{self.n_shards - 1})")
        return store.read_shard(self.folder, i, self.manifest["job"]["storage"])

    def __iter__(self) -> Iterator[store.Shard]:
        """The shards in dataset order."""
        for key in sorted(self.manifest["shards"], key=int):
            yield self.shard(int(key))

    def values(self) -> tuple[Tensor, ...]:
        """Every attribution, concatenated in dataset order (one tensor per input)."""
        shards = list(self)
        return tuple(torch.cat(col) for col in zip(*(s.values for s in shards)))

    def explanation(self, feature_names: Sequence[str] | None = None) -> Explanation:
        """The whole dataset as one :class:`~perspicio.result.Explanation` (values and targets)."""
        shards = list(self)
        targets = [s.target for s in shards]
        target = torch.cat(targets) if all(t is not None for t in targets) else None  # type: ignore[arg-type]
        job = self.manifest["job"]
        return Explanation(
            values=self.values(),
            target=target,
            feature_names=tuple(feature_names) if feature_names is not None else None,
            method=job["method"],
            arguments=job["arguments"],
        )

    def summarize(self, stats: Sequence[Stat]) -> Any:
        """Statistics of the attributions over the whole dataset (a :class:`Summarizer`).

        Each shard's batch statistics are merged into the running ones in dataset order, so
        the result is the same as one process summarising the same batches.
        """
        summarizer = Summarizer(stats)
        for shard in self:
            summarizer.update_batch(shard.values if len(shard.values) > 1 else shard.values[0])
        return summarizer
