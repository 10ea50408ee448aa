"""Checkpoint discovery, safe reading, and visits that leave the model as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from perspicio._core.checkpoints import (
    at_checkpoint,
    checkpoint_paths,
    load_state_dict,
    read_state_dict,
    restored,
)
from perspicio._core.validate import ArgumentError


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def snapshot(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def same(m: nn.Module, snap: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, snap[k]) for k, v in m.state_dict().items())


def test_folder_is_sorted_naturally(tmp_path: Path) -> None:
    for i in (10, 2, 1):
        (tmp_path / f"ckpt-{i}.pt").write_bytes(b"")
    names = [Path(p).name for p in checkpoint_paths(str(tmp_path))]
    assert names == ["ckpt-1.pt", "ckpt-2.pt", "ckpt-10.pt"]
    assert checkpoint_paths(["b-10", "b-9"]) == ["b-9", "b-10"]
    states = [{"a": torch.ones(1)}]
    assert checkpoint_paths(iter(states)) == states


@pytest.mark.parametrize("bad", ["/nonexistent/folder", []])
def test_no_checkpoints(bad: object) -> None:
    with pytest.raises(ArgumentError, match="checkpoints"):
        checkpoint_paths(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["pt", "safetensors", "nested", "data_parallel"])
def test_default_loader_reads_and_restores(tmp_path: Path, fmt: str) -> None:
    m = model()
    target = {k: v + 1.0 for k, v in m.state_dict().items()}
    path = tmp_path / f"c.{'safetensors' if fmt == 'safetensors' else 'pt'}"
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({**target, "learning_rate": torch.tensor(0.25)}, str(path))
    elif fmt == "nested":
        torch.save({"model_state_dict": target, "learning_rate": 0.25}, path)
    elif fmt == "data_parallel":
        torch.save({**{f"module.{k}": v for k, v in target.items()}, "learning_rate": 0.25}, path)
    else:
        torch.save({**target, "learning_rate": 0.25}, path)
    before = snapshot(m)
    with at_checkpoint(m, str(path)) as lr:
        assert lr == 0.25
        assert all(torch.equal(v, target[k]) for k, v in m.state_dict().items())
    assert same(m, before)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.ones(1), "obj": object()}, path)
    with pytest.raises(ArgumentError, match="could not be read as tensors"):
        read_state_dict(str(path))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("0.weight"), "missing keys"),
        (lambda s: s.update(extra=torch.ones(1)), "unexpected keys"),
        (lambda s: s.update({"0.weight": torch.ones(2, 2)}), "has shape"),
    ],
)
def test_mismatched_checkpoint_is_rejected_before_any_change(
    tmp_path: Path, change, message
) -> None:  # type: ignore[no-untyped-def]
    m = model()
    state = {k: v + 1 for k, v in m.state_dict().items()}
    change(state)
    path = tmp_path / "c.pt"
    torch.save(state, path)
    before = snapshot(m)
    with pytest.raises(ArgumentError, match=message), at_checkpoint(m, str(path)):
        pass
    with pytest.raises(ArgumentError, match=message):
        load_state_dict(m, str(path))
    assert same(m, before)


def test_user_loader_is_undone_even_after_an_error() -> None:
    m = model()
    before = snapshot(m)
    grads_flag = [p.requires_grad for p in m.parameters()]

    def load(module: nn.Module, path: str) -> float:
        module.load_state_dict({k: v * 3 for k, v in before.items()})
        return 2.0

    with at_checkpoint(m, "x", load) as lr:
        assert lr == 2.0 and not same(m, before)
    assert same(m, before)
    with pytest.raises(RuntimeError, match="boom"), at_checkpoint(m, "x", load):
        raise RuntimeError("boom")
    assert same(m, before)
    assert [p.requires_grad for p in m.parameters()] == grads_flag


def test_restored_puts_back_replaced_tensors() -> None:
    m = model()
    before = snapshot(m)
    weight = m[0].weight
    with restored(m):
        m.load_state_dict({k: v * 2 for k, v in before.items()}, assign=True)
        assert m[0].weight is not weight
    assert m[0].weight is weight and same(m, before)


def test_a_loader_must_return_a_rate() -> None:
    m = model()
    before = snapshot(m)
    visit = at_checkpoint(m, "x", lambda module, path: "fast")
    with pytest.raises(TypeError, match="must return the learning rate"), visit:
        pass
    assert same(m, before)
