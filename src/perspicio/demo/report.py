"""Writes the demo's HTML report: heat maps per method and a timing table."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor


@dataclass
class MethodRow:
    name: str
    family: str
    seconds: float
    delta: float | None
    images: list[str]
    error: str | None = None


def save_heatmap(attribution: Tensor, image: Tensor, path: Path, title: str) -> None:
    """A blended heat map of one ``(1, H, W)`` attribution over its image, as a PNG."""
    from perspicio.attr.visualization import visualize_image_attr

    attr_hwc = attribution.detach().permute(1, 2, 0).numpy()
    img_hwc = image.detach().permute(1, 2, 0).numpy()
    method = "heat_map" if not np.any(attr_hwc) else "blended_heat_map"
    fig, _ = visualize_image_attr(
        attr_hwc, img_hwc, method=method, sign="all", use_pyplot=False, fig_size=(2, 2), title=title
    )
    fig.savefig(path, dpi=60, bbox_inches="tight")


def save_image(image: Tensor, path: Path, title: str) -> None:
    from perspicio.attr.visualization import visualize_image_attr

    fig, _ = visualize_image_attr(
        None,
        image.permute(1, 2, 0).numpy(),
        method="original_image",
        use_pyplot=False,
        fig_size=(2, 2),
        title=title,
    )
    fig.savefig(path, dpi=60, bbox_inches="tight")


def write(
    out_dir: Path,
    accuracy: float,
    originals: list[str],
    rows: list[MethodRow],
    extra_sections: list[str],
) -> Path:
    """Write ``index.html`` in ``out_dir`` and return its path."""
    esc = html.escape
    head = "".join(f"<th><img src='{esc(p)}' alt='input'></th>" for p in originals)
    body = []
    for r in rows:
        cells = "".join(f"<td><img src='{esc(p)}' alt='{esc(r.name)}'></td>" for p in r.images)
        if r.error:
            cells = f"<td colspan='{len(originals)}'>failed: {esc(r.error)}</td>"
        body.append(f"<tr><th>{esc(r.name)}</th>{cells}</tr>")
    timing = "".join(
        f"<tr><td>{esc(r.name)}</td><td>{esc(r.family)}</td><td>{r.seconds * 1000:.1f}</td>"
        f"<td>{'' if r.delta is None else f'{r.delta:.2e}'}</td></tr>"
        for r in rows
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>perspicio demo</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ddd;padding:4px;text-align:center}} img{{width:110px}}</style></head>
<body><h1>perspicio: explaining a digits CNN</h1>
<p>A small CNN trained in place on scikit-learn's 8×8 digits: test accuracy <b>{accuracy:.1%}</b>.
Each column is a test digit; each row an attribution method for the predicted class
(green: evidence for, red: evidence against).</p>
<table><tr><th>method</th>{head}</tr>{"".join(body)}</table>
<h2>Time and completeness</h2>
<p>Wall time for the whole batch; the convergence delta is the largest |Σ attribution − (f(x) − f(baseline))|
over the batch, for methods that have one (LRP's includes the relevance its biases absorb, and
GradientShap's is per random sample, not an error of the expectation).</p>
<table><tr><th>method</th><th>family</th><th>time (ms)</th><th>max |delta|</th></tr>{timing}</table>
{"".join(extra_sections)}
</body></html>
"""
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
