"""The demo's ground-truth section: every method explains a shapes CNN, scored against the
true object masks with the localisation metrics.

The images come from :mod:`perspicio.testing.shapes`: one placed shape (square, disk,
triangle or cross) over noise sets the class, so the object's pixels are where the evidence
must be. Each method explains the true class of ``n_score`` test images; the first ``n_show``
are drawn next to their masks, and the metrics are averaged over all of them.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from perspicio.demo import report
from perspicio.demo.methods import SHAPES, all_methods
from perspicio.metrics import pointing_game, relevance_mass_accuracy, relevance_rank_accuracy
from perspicio.testing.digits import accuracy
from perspicio.testing.shapes import SHAPES as SHAPE_NAMES
from perspicio.testing.shapes import shapes_model

LOCALISATION: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "pointing game": pointing_game,
    "relevance mass": relevance_mass_accuracy,
    "relevance rank": relevance_rank_accuracy,
}


@dataclass
class Scored:
    name: str
    family: str
    seconds: float
    scores: dict[str, float] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)
    error: str | None = None


def score(attribution: Tensor, mask: Tensor) -> dict[str, float]:
    """Mean localisation scores of per-pixel attributions (channels summed) against masks."""
    pixels = attribution.detach().sum(1, keepdim=True)
    return {name: float(fn(pixels, mask).mean()) for name, fn in LOCALISATION.items()}


def run_methods(out: Path, n_show: int, n_score: int) -> tuple[float, list[Scored], list[str]]:
    """Explain the test images with every method; the accuracy, the rows and the input PNGs."""
    model, data = shapes_model()
    acc = accuracy(model, data.x, data.y)
    batch = data[:n_score]
    target = batch.y.tolist()
    columns = []
    for i in range(n_show):
        title = SHAPE_NAMES[target[i]]
        report.save_image(batch.x[i], out / f"shape_{i}.png", title)
        report.save_image(batch.mask[i].float(), out / f"shape_mask_{i}.png", "true mask")
        columns.append(f"shape_{i}.png")
    rows = []
    for k, method in enumerate(all_methods(SHAPES)):
        start = time.perf_counter()
        try:
            attribution, _ = method.run(model, batch.x, target)
        except Exception as exc:  # a broken method must not hide the others
            rows.append(Scored(method.name, method.family, 0.0, error=repr(exc)))
            continue
        row = Scored(method.name, method.family, time.perf_counter() - start)
        row.scores = score(attribution, batch.mask)
        for i in range(n_show):
            name = f"s{k}_{i}.png"
            report.save_heatmap(attribution[i], batch.x[i], out / name, "")
            row.images.append(name)
        rows.append(row)
    noise = torch.rand(batch.x.shape, generator=torch.Generator().manual_seed(0))
    rows.append(Scored("random attribution (reference)", "-", 0.0, score(noise, batch.mask)))
    return acc, rows, columns


def shapes_section(out: Path, n_show: int = 6, n_score: int = 16) -> tuple[str, list[Scored]]:
    """The section's HTML and its rows (a row with ``error`` set is a failed method)."""
    acc, rows, columns = run_methods(out, n_show, n_score)
    esc = html.escape
    head = "".join(f"<th><img src='{c}' alt='input'></th>" for c in columns)
    masks = "".join(
        f"<td><img src='shape_mask_{i}.png' alt='true mask'></td>" for i in range(len(columns))
    )
    grid = []
    for r in rows:
        if r.error:
            cells = f"<td colspan='{len(columns)}'>failed: {esc(r.error)}</td>"
        else:
            cells = "".join(f"<td><img src='{p}' alt='{esc(r.name)}'></td>" for p in r.images)
        if r.images or r.error:
            grid.append(f"<tr><th>{esc(r.name)}</th>{cells}</tr>")
    names = list(LOCALISATION)
    ranked = sorted((r for r in rows if not r.error), key=lambda r: -r.scores["relevance rank"])
    table = "".join(
        f"<tr><td>{esc(r.name)}</td><td>{esc(r.family)}</td>"
        + "".join(f"<td>{r.scores[n]:.3f}</td>" for n in names)
        + f"<td>{r.seconds * 1000:.1f}</td></tr>"
        for r in ranked
    )
    metric_head = "".join(f"<th>{esc(n)}</th>" for n in names)
    page = f"""<h2>Ground truth: where is the object?</h2>
<p>A CNN trained here in seconds on synthetic 32×32 images whose class is the one shape placed
at a random position over noise ({", ".join(SHAPE_NAMES)}): test accuracy
<b>{acc:.1%}</b>. Each method explains the true class; the object's pixels are the ground
truth. CAM rows are computed at the last convolutional block (8×8) and upsampled.</p>
<table><tr><th>method</th>{head}</tr><tr><th>true mask</th>{masks}</tr>{"".join(grid)}</table>
<h3>Localisation scores</h3>
<p>Means over {n_score} test images (higher is better).
Pointing game: is the largest attribution on the object; relevance mass: the share of positive
attribution on the object; relevance rank: the share of the K top-ranked pixels on the object
(K = the object's size). The random row is what an uninformative map scores. The model ends
in global average pooling and a linear layer, where Grad-CAM, HiResCAM and XGrad-CAM coincide
(all three reduce to the original CAM); Shapley, Lime and Kernel SHAP rows work on 8 or 16
coarse pixel blocks, so they cannot outline a small object.</p>
<table><tr><th>method</th><th>family</th>{metric_head}<th>time (ms)</th></tr>{table}</table>"""
    return page, rows
