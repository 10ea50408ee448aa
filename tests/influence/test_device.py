"""On a GPU: every influence class runs there and gives the CPU's numbers (skipped without one)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import perspicio.influence as inf

pytestmark = [
    pytest.mark.usefixtures("float64"),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def build(device: str, tmp_path: Path) -> dict[str, Any]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 3)).to(device)
    X = torch.randn(20, 3).to(device)
    y = torch.randint(0, 3, (20,)).to(device)
    path = tmp_path / f"{device}.pt"
    torch.save(model.state_dict(), path)
    return dict(model=model, data=TensorDataset(X, y), test=(X[:4], y[:4]), paths=[str(path)])


CASES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "TracInCP": lambda s: inf.TracInCP(
        s["model"], s["data"], s["paths"], loss_fn=nn.CrossEntropyLoss(reduction="none"), batch_size=6
    ),
    "TracInCPFast": lambda s: inf.TracInCPFast(
        s["model"], s["model"][2], s["data"], s["paths"], loss_fn=nn.CrossEntropyLoss(reduction="sum")
    ),
    "TracInCPFastRandProj": lambda s: inf.TracInCPFastRandProj(
        s["model"], s["model"][2], s["data"], s["paths"],
        loss_fn=nn.CrossEntropyLoss(reduction="sum"), projection_dim=4,
    ),
    "NaiveInfluenceFunction": lambda s: inf.NaiveInfluenceFunction(
        s["model"], s["data"], s["paths"][0], loss_fn=nn.CrossEntropyLoss(reduction="none"), batch_size=8
    ),
    "ArnoldiInfluenceFunction": lambda s: inf.ArnoldiInfluenceFunction(
        s["model"], s["data"], s["paths"][0], loss_fn=nn.CrossEntropyLoss(reduction="none"),
        batch_size=8, arnoldi_dim=10, projection_dim=4,
    ),
    "EKFACInfluence": lambda s: inf.EKFACInfluence(
        s["model"], s["data"], s["paths"][0], loss_fn=nn.CrossEntropyLoss(reduction="none"), batch_size=8
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_runs_on_the_gpu_with_cpu_numbers(name: str, tmp_path: Path) -> None:
    out = {}
    for device in ("cpu", "cuda"):
        setup = build(device, tmp_path)
        method = CASES[name](setup)
        scores = method.influence(setup["test"], k=None)
        top = method.influence(setup["test"], k=3)
        own = method.self_influence()
        assert scores.device.type == device
        out[device] = (scores.cpu(), top.indices.cpu(), own.cpu())
    for a, b in zip(out["cpu"], out["cuda"]):
        torch.testing.assert_close(b, a, atol=1e-8, rtol=1e-6)


def test_similarity_on_the_gpu(tmp_path: Path) -> None:
    out = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.Tanh()).to(device)
        X = torch.randn(9, 3).to(device)
        sim = inf.SimilarityInfluence(model, ["0"], X, str(tmp_path / device), batch_size=4)
        out.append(sim.influence(X[:2], top_k=3)["0"])
    assert torch.equal(out[0][0], out[1][0].cpu())
    torch.testing.assert_close(out[1][1].cpu(), out[0][1])
