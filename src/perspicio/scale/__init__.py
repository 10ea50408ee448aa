"""Dataset-scale attribution: stream a dataset, compute shards on a process pool or Ray, write
them (safetensors or zarr) with a manifest, resume after a crash."""

from __future__ import annotations

from perspicio.scale.job import attribute_dataset, default_unpack
from perspicio.scale.result import DatasetAttribution

__all__ = ["DatasetAttribution", "attribute_dataset", "default_unpack"]
