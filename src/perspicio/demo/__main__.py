"""``python -m perspicio.demo``: train (or load) the digits and shapes CNNs and write the HTML
report."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from perspicio.demo import ground_truth, report, sections
from perspicio.demo.methods import all_methods
from perspicio.testing.digits import accuracy, digits_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo-output", help="report folder")
    parser.add_argument("--examples", type=int, default=6, help="test digits to explain")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)  # the models here are tiny: intra-op threads only add overhead
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model, data = digits_model()
    acc = accuracy(model, data.x_test, data.y_test)
    sys.stdout.write(f"digits CNN test accuracy: {acc:.1%}\n")
    x = data.x_test[: args.examples]
    with torch.no_grad():
        target = model(x).argmax(1).tolist()
    originals = []
    for i in range(len(x)):
        name = f"input_{i}.png"
        report.save_image(x[i], out / name, f"label {int(data.y_test[i])}, pred {target[i]}")
        originals.append(name)

    rows = []
    for k, method in enumerate(all_methods()):
        start = time.perf_counter()
        try:
            attribution, delta = method.run(model, x, target)
        except Exception as exc:  # a broken method must not hide the others
            rows.append(
                report.MethodRow(method.name, method.family, 0.0, None, [], error=repr(exc))
            )
            continue
        seconds = time.perf_counter() - start
        images = []
        for i in range(len(x)):
            name = f"m{k}_{i}.png"
            report.save_heatmap(attribution[i], x[i], out / name, "")
            images.append(name)
        max_delta = None if delta is None else float(delta.abs().max())
        rows.append(report.MethodRow(method.name, method.family, seconds, max_delta, images))
        sys.stdout.write(f"  {method.name:28s} {seconds * 1000:8.1f} ms\n")
    extra = []

    def shapes() -> str:
        page, scored = ground_truth.shapes_section(out)
        for r in scored:
            if r.error:
                rows.append(report.MethodRow(f"shapes: {r.name}", r.family, 0.0, None, [], r.error))
        return page

    for name, build in [
        ("metrics", lambda: sections.metrics_section(model, data.x_test[:32], data.y_test[:32])),
        ("ground truth", shapes),
        ("text", sections.text_section),
    ]:
        start = time.perf_counter()
        try:
            extra.append(build())
        except Exception as exc:  # the report still shows everything else
            extra.append(f"<h2>{name}</h2><p>failed: {exc!r}</p>")
            rows.append(report.MethodRow(name, "section", 0.0, None, [], error=repr(exc)))
        sys.stdout.write(f"  section {name:20s} {(time.perf_counter() - start) * 1000:8.1f} ms\n")
    path = report.write(out, acc, originals, rows, extra)
    sys.stdout.write(f"report written to {path}\n")
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
