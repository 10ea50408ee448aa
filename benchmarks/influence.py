"""Influence workloads: TracInCP self influence of a ~94k-parameter MLP over 10k examples.

Both libraries get the same model (the tabular MLP, 100 -> 256 -> 256 -> 10), the same two
checkpoints on disk, cross-entropy with ``reduction="sum"`` and ``batch_size=64``. Captum runs
with ``sample_wise_grads_per_batch=True``, its fastest mode (per-example gradients from layer
hooks; the default ``False`` takes one backward pass per example). The floor is what any
gradient-based method needs at least: per checkpoint, one batched forward+backward of the
summed loss over all examples (no per-example gradients at all).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from benchmarks.models import TabularMLP
from benchmarks.workload import Bench, Config, Workload, cached, load


def _checkpoints(model: nn.Module, n: int) -> list[str]:
    folder = tempfile.mkdtemp(prefix="perspicio-bench-ckpt-")
    paths = []
    for i in range(n):
        state = {k: v * (1.0 - 0.1 * i) for k, v in model.state_dict().items()}
        path = os.path.join(folder, f"ckpt-{i}.pt")
        torch.save(state, path)
        paths.append(path)
    return paths


def tracincp_self_influence(cfg: Config) -> Bench:
    model: TabularMLP = cached("tabular", cfg, TabularMLP)
    n, n_ckpt = cfg.pick(10_000, 200), cfg.pick(2, 1)
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(n, 100, generator=gen).to(cfg.device)
    y = torch.randint(0, 10, (n,), generator=gen).to(cfg.device)
    data = TensorDataset(X, y)
    paths = _checkpoints(model, n_ckpt)
    loss = nn.CrossEntropyLoss(reduction="sum")
    kwargs: dict[str, Any] = dict(loss_fn=loss, batch_size=64, sample_wise_grads_per_batch=True)

    def entry(library: str) -> Any:
        cls = load(library, "influence", "TracInCP")
        if isinstance(cls, str):
            return cls  # the reason it cannot run
        tracin = cls(model, data, paths, **kwargs)
        return lambda: tracin.self_influence()

    states = [torch.load(p, weights_only=True) for p in paths]

    def floor() -> Any:
        own = {k: v.clone() for k, v in model.state_dict().items()}
        try:
            for state in states:
                model.load_state_dict(state)
                with torch.enable_grad():
                    grads = torch.autograd.grad(loss(model(X), y), list(model.parameters()))
        finally:
            model.load_state_dict(own)
        return grads

    rows = f"fwd+bwd {n} rows x {n_ckpt} checkpoints"
    return Bench(entry("perspicio"), entry("captum"), floor, rows)


WORKLOADS = [
    Workload(
        "influence/tracincp_self", "TracInCP.self_influence, 10k rows, 2 checkpoints, batch 64",
        "per checkpoint, one forward+backward of the summed loss over the 10k rows",
        tracincp_self_influence,
    ),
]  # fmt: skip
