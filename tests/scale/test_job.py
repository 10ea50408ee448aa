"""Dataset-scale attribution: shards, manifest, resume, determinism, backends, summaries."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from perspicio import ArgumentError
from perspicio.attr import GradientShap, IntegratedGradients, Saliency
from perspicio.scale import DatasetAttribution, attribute_dataset
from perspicio.summary import CommonStats, Summarizer

pytest.importorskip("safetensors")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def _loader(n: int = 40, batch: int = 8) -> DataLoader:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 6, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch)


@pytest.mark.parametrize("storage", ["safetensors", "zarr"])
def test_shards_equal_attribute_batch_by_batch(tmp_path, storage) -> None:
    if storage == "zarr":
        pytest.importorskip("zarr")
    model = _model()
    ig = IntegratedGradients(model)
    result = attribute_dataset(
        ig, _loader(), tmp_path, target="label", format=storage, workers=0, n_steps=16
    )
    assert result.complete and result.n_shards == 5 and len(result) == 40
    for i, (x, y) in enumerate(_loader()):
        shard = result.shard(i)
        assert torch.equal(shard.values[0], ig.attribute(x, target=y, n_steps=16))
        assert torch.equal(shard.target, y)
        assert shard.index.tolist() == list(range(8 * i, 8 * i + 8))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["job"]["method"] == "IntegratedGradients"
    assert manifest["job"]["arguments"] == {"n_steps": 16}


class _Crash(nn.Module):
    """A model that fails once, after ``fail_after`` forward passes, and counts its calls."""

    def __init__(self, model: nn.Module, fail_after: int | None) -> None:
        super().__init__()
        self.model, self.fail_after, self.calls = model, fail_after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated crash")
        return self.model(x)


def test_resume_after_a_crash_loses_nothing_and_repeats_nothing(tmp_path) -> None:
    model = _model()
    reference = attribute_dataset(Saliency(model), _loader(), tmp_path / "ref", target=0, workers=0)
    crashing = _Crash(model, fail_after=3)  # Saliency: one forward per shard
    with pytest.raises(RuntimeError, match="simulated crash"):
        attribute_dataset(Saliency(crashing), _loader(), tmp_path / "run", target=0, workers=0)
    partial = DatasetAttribution(tmp_path / "run")
    assert not partial.complete and partial.n_shards == 3
    counting = _Crash(model, fail_after=None)
    done = attribute_dataset(Saliency(counting), _loader(), tmp_path / "run", target=0, workers=0)
    assert counting.calls == 2  # only the two missing shards
    assert done.complete
    for a, b in zip(done.values(), reference.values()):
        assert torch.equal(a, b)


def test_a_shard_written_before_the_manifest_is_adopted(tmp_path) -> None:
    model = _model()
    attribute_dataset(Saliency(model), _loader(), tmp_path, target=0, workers=0)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["shards"]["4"]
    manifest["complete"] = False
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    counting = _Crash(model, fail_after=None)
    result = attribute_dataset(Saliency(counting), _loader(), tmp_path, target=0, workers=0)
    assert counting.calls == 0 and result.n_shards == 5 and result.complete


def test_another_job_in_the_same_folder_is_refused(tmp_path) -> None:
    model = _model()
    attribute_dataset(Saliency(model), _loader(), tmp_path, target=0, workers=0)
    with pytest.raises(ArgumentError, match="holds another job"):
        attribute_dataset(Saliency(model), _loader(), tmp_path, target=1, workers=0)
    again = attribute_dataset(
        Saliency(model), _loader(), tmp_path, target=1, workers=0, resume=False
    )
    assert again.shard(0).target.tolist() == [1] * 8


def test_stochastic_methods_are_seeded_per_shard(tmp_path) -> None:
    model = _model()
    gs = GradientShap(model)
    base = torch.zeros(4, 6)
    a = attribute_dataset(
        gs, _loader(), tmp_path / "a", target=0, workers=0, baselines=base, seed=3
    )
    b = attribute_dataset(
        gs, _loader(16, 8), tmp_path / "b", target=0, workers=0, baselines=base, seed=3
    )
    assert torch.equal(a.shard(1).values[0], b.shard(1).values[0])
    x1 = _loader().dataset.tensors[0][8:16]
    torch.manual_seed(3 + 1)  # shard 1 runs with seed + 1
    assert torch.equal(a.shard(1).values[0], gs.attribute(x1, baselines=base, target=0))


def test_process_pool_gives_the_same_bits(tmp_path) -> None:
    model = _model()
    ig = IntegratedGradients(model)
    one = attribute_dataset(
        ig, _loader(), tmp_path / "one", target="label", workers=0, num_threads=1, n_steps=8
    )
    pool = attribute_dataset(
        ig, _loader(), tmp_path / "pool", target="label", workers=2, num_threads=1, n_steps=8
    )
    for a, b in zip(one.values(), pool.values()):
        assert torch.equal(a, b)


def test_summaries_merged_across_shards_equal_one_pass(tmp_path) -> None:
    model = _model()
    result = attribute_dataset(Saliency(model), _loader(), tmp_path, target="predicted", workers=0)
    merged = result.summarize(CommonStats()).summary
    whole = Summarizer(CommonStats())
    for x, _ in _loader():
        pred = model(x).argmax(-1)
        whole.update_batch(Saliency(model).attribute(x, target=pred))
    for key, value in whole.summary.items():
        torch.testing.assert_close(merged[key], value)
    allv = result.values()[0]
    torch.testing.assert_close(merged["mean"], allv.mean(0))
    torch.testing.assert_close(merged["sample_variance"].float(), allv.var(0))
    e = result.explanation()
    assert len(e) == 40 and e.method == "Saliency"


def test_bad_arguments(tmp_path) -> None:
    model = _model()
    with pytest.raises(ArgumentError, match="backend must be one of"):
        attribute_dataset(Saliency(model), _loader(), tmp_path, backend="spark")
    with pytest.raises(ArgumentError, match="format must be one of"):
        attribute_dataset(Saliency(model), _loader(), tmp_path, format="hdf5")
    with pytest.raises(ArgumentError, match="workers must be"):
        attribute_dataset(Saliency(model), _loader(), tmp_path, workers=-1)
    with pytest.raises(ArgumentError, match="target='label' needs"):
        attribute_dataset(
            Saliency(model), [torch.randn(2, 6)], tmp_path / "x", target="label", workers=0
        )
    with pytest.raises(ArgumentError, match="holds no dataset attribution"):
        DatasetAttribution(tmp_path / "nothing")
