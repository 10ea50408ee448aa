"""Concept data iterators, at Captum's path ``captum.concept._utils.data_iterator``.

Example:
    >>> import os, tempfile, torch
    >>> from perspicio.concept._utils.data_iterator import (
    ...     CustomIterableDataset, dataset_to_dataloader)
    >>> folder = tempfile.mkdtemp() + os.sep
    >>> for i in range(3):
    ...     open(folder + f"{i}.txt", "w").write(str(i))
    1
    1
    1
    >>> read = lambda path: torch.tensor([float(open(path).read())])
    >>> batches = list(dataset_to_dataloader(CustomIterableDataset(read, folder), batch_size=2))
    >>> [b.shape for b in batches]
    [torch.Size([2, 1]), torch.Size([1, 1])]
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset, IterableDataset


class CustomIterableDataset(IterableDataset):
    """The examples stored at ``path``: each file of a folder, or one file, read by a function.

    Args:
        transform_filename_to_tensor: reads a file path and returns its example (a tensor).
            For a single file (``path`` not a folder) it returns an iterable of examples.
        path: a folder (every file in it, in sorted order) or one file.
    """

    def __init__(self, transform_filename_to_tensor: Callable[[str], Any], path: str) -> None:
        self.path = path
        self.transform_filename_to_tensor = transform_filename_to_tensor
        self.file_itr = sorted(glob.glob(os.path.join(path, "*"))) if os.path.isdir(path) else None

    def __iter__(self) -> Iterator[Any]:
        if self.file_itr is None:
            return iter(self.transform_filename_to_tensor(self.path))
        return map(self.transform_filename_to_tensor, self.file_itr)


def dataset_to_dataloader(dataset: Dataset, batch_size: int = 64) -> DataLoader:
    """A ``DataLoader`` giving ``dataset`` in batches of ``batch_size`` (for a Concept)."""
    return DataLoader(dataset, batch_size=batch_size)
