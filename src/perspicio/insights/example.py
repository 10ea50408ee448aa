"""The explorer on the digits CNN: ``python -m perspicio.insights.example``.

The model and data come from :mod:`perspicio.testing.digits` (scikit-learn's bundled 8x8
digits; the CNN trains in a few seconds the first time and is cached), so nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from perspicio.insights.api import AttributionVisualizer, Batch
from perspicio.insights.features import ImageFeature


def digits_visualizer(
    cache_dir: str | Path | None = None, batch_size: int = 16
) -> AttributionVisualizer:
    """An explorer over the test split of the digits, explained on the trained CNN."""
    from perspicio.testing.digits import digits_model

    model, data = digits_model(cache_dir)
    dataset = [
        Batch(x, y) for x, y in zip(data.x_test.split(batch_size), data.y_test.split(batch_size))
    ]
    return AttributionVisualizer(
        models=model,
        classes=[str(d) for d in range(10)],
        features=[
            ImageFeature("Digit", baseline_transforms=[torch.zeros_like], input_transforms=[])
        ],
        dataset=dataset,
        score_func=lambda out: out.softmax(-1),
    )


def run_demo(port: int | None = None, bind_all: bool = False, debug: bool = False) -> None:
    """Serve the digits explorer, print its URL, and serve until interrupted (Ctrl-C)."""
    visualizer = digits_visualizer()
    url = visualizer.serve(port=port, bind_all=bind_all, debug=debug)
    print(f"perspicio insights is running at {url} (Ctrl-C to stop)", flush=True)
    try:
        while visualizer.url is not None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        visualizer.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The serving options shared by this module and ``perspicio insights``."""
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument(
        "--bind-all", action="store_true", help="listen on all interfaces, not only 127.0.0.1"
    )
    parser.add_argument("--debug", action="store_true", help="log every request")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m perspicio.insights.example``."""
    parser = argparse.ArgumentParser(description="perspicio insights on the digits CNN")
    add_arguments(parser)
    args = parser.parse_args(argv)
    run_demo(args.port, args.bind_all, args.debug)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
