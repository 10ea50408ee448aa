"""Text workload: LayerIntegratedGradients on a small transformer's embedding layer."""

from __future__ import annotations

import torch

from benchmarks.models import TextClassifier
from benchmarks.workload import Bench, Config, Workload, both, cached, grad_floor, identity

TARGET = 1


def layer_integrated_gradients(cfg: Config) -> Bench:
    n, seq, steps = cfg.pick(8, 2), cfg.pick(64, 16), cfg.pick(50, 4)
    model: TextClassifier = cached("text", cfg, lambda: TextClassifier(seq_len=seq))
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, 1000, (n, seq), generator=g).to(cfg.device)
    pad = torch.zeros_like(tokens)
    p, c = both(
        "LayerIntegratedGradients", (model, model.embedding), tokens, baselines=pad,
        target=TARGET, n_steps=steps,
    )  # fmt: skip
    with torch.no_grad():
        start, end = model.embedding(pad), model.embedding(tokens)
        alphas = torch.linspace(0, 1, steps, device=cfg.device).reshape(-1, 1, 1, 1)
        # (steps * n, seq, d_model): every example at every point of the path
        path = (start + alphas * (end - start)).reshape(steps * n, seq, -1)
    floor = grad_floor(identity, model.head, path, TARGET)
    return Bench(p, c, floor, f"fwd+bwd {steps * n} sequences after the embedding")


WORKLOADS = [
    Workload(
        "text/layer_integrated_gradients",
        "LayerIntegratedGradients on the embedding, 8 x 64 tokens, n_steps=50",
        "one forward+backward of the layers after the embedding over the 50x8 path points "
        "(the interpolated embeddings prepared beforehand)",
        layer_integrated_gradients,
    ),
]
