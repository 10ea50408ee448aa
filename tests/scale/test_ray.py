"""The Ray backend: the same shards, bit for bit, as one process (a local 2-CPU Ray)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio.attr import IntegratedGradients
from perspicio.scale import attribute_dataset

ray = pytest.importorskip("ray")
pytest.importorskip("safetensors")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_workers_write_the_same_bits_as_one_process(tmp_path, local_ray) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    batches = [(torch.randn(8, 6), torch.randint(0, 3, (8,))) for _ in range(6)]
    ig = IntegratedGradients(model)
    one = attribute_dataset(
        ig, batches, tmp_path / "one", target="label", workers=0, num_threads=1, n_steps=8
    )
    on_ray = attribute_dataset(
        ig, batches, tmp_path / "ray", target="label", backend="ray", workers=2, n_steps=8
    )
    assert on_ray.complete and on_ray.n_shards == 6
    for a, b in zip(one.values(), on_ray.values()):
        assert torch.equal(a, b)
