"""The explorer on demo models: ``python -m perspicio.insights.example [--demo KIND]``.

``digits`` (the default): the digits CNN of :mod:`perspicio.testing.digits` (scikit-learn's
bundled 8x8 digits; the CNN trains in a few seconds the first time and is cached). ``text``
and ``multimodal``: the models of :mod:`perspicio.insights.demos`, trained in place. Nothing
is downloaded.
"""

from __future__ import annotations

import argparse
import sys
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


DEMOS = ("digits", "text", "multimodal")


def demo_visualizer(kind: str = "digits") -> AttributionVisualizer:
    """The explorer of one of :data:`DEMOS`."""
    from perspicio.insights import demos

    if kind == "text":
        return demos.text_visualizer()
    if kind == "multimodal":
        return demos.multimodal_visualizer()
    if kind == "digits":
        return digits_visualizer()
    raise ValueError(f"unknown demo {kind!r}; choose one of {', '.join(DEMOS)}")


def run_demo(
    port: int | None = None, bind_all: bool = False, debug: bool = False, kind: str = "digits"
) -> None:
    """Serve a demo explorer, print its URL, and serve until interrupted (Ctrl-C).

    Raises:
        OSError: The port cannot be listened on (taken, or privileged).
    """
    visualizer = demo_visualizer(kind)
    url = visualizer.serve(port=port, bind_all=bind_all, debug=debug)
    print(f"perspicio insights is running at {url} (Ctrl-C to stop)", flush=True)
    try:
        while visualizer.url is not None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        visualizer.stop()


def port_number(text: str) -> int:
    """``--port``'s type: an integer in 0..65535 (0: a free one)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..65535, got {text!r}")
    return port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The serving options shared by this module and ``perspicio insights``."""
    parser.add_argument(
        "--demo",
        nargs="?",
        const="digits",
        default=None,
        choices=DEMOS,
        help="serve a demo: digits (a CNN, the default), text (an embedding model) or "
        "multimodal (image + tabular)",
    )
    parser.add_argument("--port", type=port_number, default=None, help="port (default: a free one)")
    parser.add_argument(
        "--bind-all", action="store_true", help="listen on all interfaces, not only 127.0.0.1"
    )
    parser.add_argument("--debug", action="store_true", help="log every request")


def serve_demo(args: argparse.Namespace, prog: str) -> int:
    """Run the demo the parsed ``args`` ask for; a port problem is one line on stderr."""
    try:
        run_demo(args.port, args.bind_all, args.debug, args.demo or "digits")
    except OSError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m perspicio.insights.example``."""
    parser = argparse.ArgumentParser(description="perspicio insights on a demo model")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return serve_demo(args, parser.prog)


if __name__ == "__main__":
    raise SystemExit(main())
