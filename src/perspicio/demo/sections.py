"""Extra sections of the demo report: a metrics table and a token-attribution example."""

from __future__ import annotations

import html
from typing import Any

import torch
from torch import Tensor, nn

from perspicio import attr


def metrics_section(model: nn.Module, x: Tensor, y: Tensor) -> str:
    """Rank methods on the digits model by deletion AUC, infidelity and sensitivity."""
    from perspicio.metrics import evaluate

    prob = nn.Sequential(model, nn.Softmax(dim=1))  # curves on probabilities
    methods = {
        "Saliency": attr.Saliency(prob),
        "Input × Gradient": attr.InputXGradient(prob),
        "Integrated Gradients": attr.IntegratedGradients(prob),
        "GradientShap": attr.GradientShap(prob),
        "DeepLift": attr.DeepLift(prob),
        "Guided Backprop": attr.GuidedBackprop(prob),
        "SmoothGrad": attr.NoiseTunnel(attr.Saliency(prob)),
        "Occlusion": attr.Occlusion(prob),
        "Feature Ablation": attr.FeatureAblation(prob),
    }
    kwargs: dict[str, dict[str, Any]] = {
        "Integrated Gradients": {"n_steps": 32},
        "GradientShap": {"baselines": torch.zeros(4, 1, 8, 8), "n_samples": 8},
        "SmoothGrad": {"nt_samples": 8, "stdevs": 0.1},
        "Occlusion": {"sliding_window_shapes": (1, 2, 2)},
    }
    torch.manual_seed(0)
    names = ["deletion_auc", "insertion_auc", "infidelity", "sensitivity_max"]
    rows = evaluate(
        prob, methods, x, target=y, baselines=0.0, metrics=names, attribute_kwargs=kwargs
    )
    rows = sorted(rows, key=lambda r: float(r["deletion_auc"]))
    head = "".join(f"<th>{html.escape(n)}</th>" for n in ["method", *names])
    body = "".join(
        "<tr>"
        + f"<td>{html.escape(str(r['method']))}</td>"
        + "".join(f"<td>{float(r[n]):.4f}</td>" for n in names)
        + "</tr>"
        for r in rows
    )
    return f"""<h2>Explanation quality</h2>
<p>{len(x)} test digits, attributions of the true class's probability. Deletion AUC: lower is
better (removing the top-ranked pixels first should make the probability fall fast); insertion
AUC: higher is better; infidelity and max-sensitivity: lower is better. Sampling methods
(GradientShap, SmoothGrad) have high sensitivity partly from their own sampling noise.</p>
<table><tr>{head}</tr>{body}</table>"""


def text_section() -> str:
    """Token attributions of a tiny transformer trained in place on a toy task."""
    from perspicio.attr.visualization import VisualizationDataRecord, visualize_text
    from perspicio.testing.text import text_classifier, token_attributions

    model, tokens, labels, vocab = text_classifier()
    tokens, labels = tokens[:6], labels[:6]
    with torch.no_grad():
        probs = model(tokens).softmax(1)
    pred = probs.argmax(1)
    attrs, delta = token_attributions(model, tokens)
    records = [
        VisualizationDataRecord(
            (a / a.abs().max().clamp(min=1e-12)).tolist(),
            float(probs[i, pred[i]]),
            str(int(pred[i])),
            str(int(labels[i])),
            str(int(pred[i])),
            float(a.sum()),
            [vocab[t] for t in tokens[i].tolist()],
            float(delta[i]),
        )
        for i, a in enumerate(attrs)
    ]
    shown = visualize_text(records)
    markup = getattr(shown, "data", str(shown))
    return f"""<h2>Text: token attributions</h2>
<p>A one-layer transformer trained here in seconds to tell whether token w7 comes before token
w3. Layer Integrated Gradients on its embedding layer, from an all-padding baseline: the w7
and w3 tokens of positive examples should carry the evidence.</p>{markup}"""
