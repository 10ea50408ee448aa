"""Sharded storage of a dataset's attributions: one file (or zarr group) per shard, a manifest.

Every shard is written to a temporary name and renamed into place, so a shard that exists is
complete; the manifest (JSON, also replaced atomically) records the job and the shards done.
Nothing is pickled: tensors go to safetensors or zarr, everything else to JSON.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from perspicio._core.validate import ArgumentError

FORMAT = "perspicio.dataset/1"
STORAGES = ("safetensors", "zarr")


def check_storage(storage: str) -> None:
    if storage not in STORAGES:
        raise ArgumentError(f"format must be one of {STORAGES}, got {storage!r}")
    module = "safetensors" if storage == "safetensors" else "zarr"
    try:
        __import__(module)
    except ImportError:
        extra = "store" if storage == "safetensors" else "scale"
        raise ImportError(
            f"format={storage!r} needs the {module} package: pip install 'perspicio[{extra}]'"
        ) from None


@dataclass(frozen=True)
class Shard:
    """One shard's content: the attributions (one tensor per input), global row indices and
    the explained targets (or ``None``)."""

    values: tuple[Tensor, ...]
    index: Tensor
    target: Tensor | None = None

    def tensors(self) -> dict[str, Tensor]:
        out = {f"attr.{i}": v.detach().contiguous().cpu() for i, v in enumerate(self.values)}
        out["index"] = self.index.contiguous().cpu()
        if self.target is not None:
            out["target"] = self.target.contiguous().cpu()
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> Shard:
        keys = sorted((k for k in tensors if k.startswith("attr.")), key=lambda k: int(k[5:]))
        return cls(tuple(tensors[k] for k in keys), tensors["index"], tensors.get("target"))


def shard_name(i: int, storage: str) -> str:
    return f"shard-{i:06d}." + ("safetensors" if storage == "safetensors" else "zarr")


def write_shard(folder: Path, i: int, shard: Shard, storage: str) -> None:
    """Write shard ``i`` under a temporary name, then rename it into place."""
    final = folder / shard_name(i, storage)
    tmp = folder / (final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    if storage == "safetensors":
        from safetensors.torch import save_file

        save_file(shard.tensors(), str(tmp))
    else:
        import zarr

        group = zarr.open_group(str(tmp), mode="w")
        for k, v in shard.tensors().items():
            group.create_array(k, data=v.numpy())
    os.replace(tmp, final)


def read_shard(folder: Path, i: int, storage: str) -> Shard:
    path = folder / shard_name(i, storage)
    if storage == "safetensors":
        from safetensors.torch import load_file

        return Shard.from_tensors(load_file(str(path)))
    import zarr

    group = zarr.open_group(str(path), mode="r")
    arrays = dict(group.arrays())
    return Shard.from_tensors({k: torch.from_numpy(np.asarray(a[:])) for k, a in arrays.items()})


def shard_exists(folder: Path, i: int, storage: str) -> bool:
    return (folder / shard_name(i, storage)).exists()


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, folder / "manifest.json")


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / "manifest.json"
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ArgumentError(f"{path} is not a perspicio dataset manifest")
    return manifest
