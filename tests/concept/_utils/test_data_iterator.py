"""Concept data iterators at Captum's module path."""

from __future__ import annotations

import torch

from perspicio.concept import Concept
from perspicio.concept._utils.data_iterator import CustomIterableDataset, dataset_to_dataloader


def test_folder_of_files_in_batches(tmp_path) -> None:
    for i in range(5):
        (tmp_path / f"{i}.txt").write_text(str(i))

    def read(path: str) -> torch.Tensor:
        return torch.full((2,), float(open(path).read()))

    loader = dataset_to_dataloader(CustomIterableDataset(read, str(tmp_path) + "/"), batch_size=2)
    batches = list(loader)
    assert [b.shape for b in batches] == [(2, 2), (2, 2), (1, 2)]
    assert torch.cat(batches)[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    concept = Concept(0, "numbers", loader)
    assert sum(len(b) for b in concept.data_iter) == 5


def test_single_file_gives_its_examples(tmp_path) -> None:
    path = tmp_path / "all.txt"
    path.write_text("1 2 3")

    def read(p: str) -> list[torch.Tensor]:
        return [torch.tensor([float(v)]) for v in open(p).read().split()]

    loader = dataset_to_dataloader(CustomIterableDataset(read, str(path)), batch_size=64)
    assert torch.cat(list(loader)).flatten().tolist() == [1.0, 2.0, 3.0]
