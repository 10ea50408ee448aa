"""Dataset-scale attribution on Ray: throughput of 2 workers against 1.

    python benchmarks/scale.py [--inputs 4000] [--batch 100] [--reps 3]

Integrated Gradients (50 steps) of a small CNN (3x32x32 inputs) over ``--inputs`` examples, written as shards by
``perspicio.scale.attribute_dataset(backend="ray")`` with 1 and then 2 workers (one torch
thread each), alternating, on a local Ray instance with 2 CPUs. Reports examples per second
and the speed-up (goal: 2 workers ≥ 1.6x one worker's throughput). Needs a quiet machine with
at least 2 free cores: other processes on the CPU show up directly in the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import torch
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    import ray

    from perspicio.attr import IntegratedGradients
    from perspicio.scale import attribute_dataset

    torch.manual_seed(0)
    model = nn.Sequential(  # a small CNN on 3x32x32 images
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    )  # fmt: skip
    x = torch.randn(args.inputs, 3, 32, 32)
    batches = [(b, b.new_zeros(len(b), dtype=torch.long)) for b in x.split(args.batch)]
    ig = IntegratedGradients(model)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    times: dict[int, list[float]] = {1: [], 2: []}
    try:
        for _ in range(args.reps):
            for workers in (1, 2):
                with tempfile.TemporaryDirectory() as out:
                    start = time.perf_counter()
                    attribute_dataset(
                        ig, batches, out, target="label", backend="ray", workers=workers, n_steps=50
                    )
                    times[workers].append(time.perf_counter() - start)
    finally:
        ray.shutdown()
    rate = {w: args.inputs / statistics.median(t) for w, t in times.items()}
    print(f"1 worker : {rate[1]:8.0f} examples/s (median of {args.reps})")
    print(f"2 workers: {rate[2]:8.0f} examples/s")
    print(f"speed-up : {rate[2] / rate[1]:.2f}x (goal >= 1.6x)")


if __name__ == "__main__":
    main()
