"""Is a TCAV score meaningful? A two-sided t-test against random concepts, and a plot.

Kim et al. (2018), "Interpretability Beyond Feature Attribution: Quantitative Testing with
Concept Activation Vectors (TCAV)", https://arxiv.org/abs/1711.11279, section 3.2: a CAV
trained against random examples can give any score, so the concept's scores against many
random sets are compared with scores of random concepts against each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from perspicio._core.validate import ArgumentError
from perspicio.concept.concept import Concept, concepts_to_str


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)`` (continued fraction)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point
        return 1.0 - _betainc(b, a, 1.0 - x)
    log_front = a * math.log(x) + b * math.log1p(-x) - math.log(a)
    log_front -= math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    tiny = 1e-300
    d = 1.0 - (a + b) * x / (a + 1)
    c, d = 1.0, 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 300):
        for coef in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + coef * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + coef / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * f


def ttest_ind(a: Tensor, b: Tensor) -> tuple[float, float]:
    """Two-sided Student t-test (pooled variance) of equal means: ``(t, p)``.

    Equal samples with no spread give ``(0, 1)``; different ones with no spread ``(±inf, 0)``.
    """
    a, b = a.double().flatten(), b.double().flatten()
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        raise ArgumentError(f"a t-test needs at least two scores per group, got {na} and {nb}")
    df = na + nb - 2
    pooled = ((na - 1) * a.var() + (nb - 1) * b.var()) / df
    diff = float(a.mean() - b.mean())
    se = math.sqrt(float(pooled) * (1 / na + 1 / nb))
    if se == 0.0:
        return (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    t = diff / se
    return t, _betainc(df / 2, 0.5, df / (df + t * t))


@dataclass(frozen=True)
class TCAVSignificance:
    """The test of one concept at one layer.

    Attributes:
        concept: the concept tested.
        layer: the layer name.
        scores: the concept's TCAV score against each random concept.
        random_scores: the TCAV score of each random concept against the next one.
        t_statistic: Student's t of ``scores`` against ``random_scores``.
        p_value: its two-sided p-value.
        alpha: the significance level; ``significant`` is ``p_value < alpha``.
    """

    concept: Concept
    layer: str
    scores: Tensor
    random_scores: Tensor
    t_statistic: float
    p_value: float
    alpha: float

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha


def significance_test(
    tcav: Any,
    inputs: Any,
    concept: Concept,
    random_concepts: Sequence[Concept],
    target: Any = None,
    additional_forward_args: Any = None,
    score_type: str = "sign_count",
    alpha: float = 0.05,
    **kwargs: Any,
) -> dict[str, TCAVSignificance]:
    """Test whether ``concept``'s TCAV score differs from random concepts' (Kim et al., 2018).

    The concept is scored against each random concept (one CAV each), and each random
    concept against the next one (``random_concepts[i]`` against ``[i + 1]``, cyclically);
    a two-sided t-test compares the two groups of scores at every layer of ``tcav``.

    Example:
        >>> import tempfile, torch
        >>> from perspicio.concept import TCAV, Concept
        >>> from perspicio.concept.stats import significance_test
        >>> from perspicio.testing import ConvNet
        >>> g = torch.Generator().manual_seed(0)
        >>> bright = Concept(0, "bright", [torch.rand(8, 1, 8, 8, generator=g) + 1])
        >>> randoms = [Concept(i, f"random{i}", [torch.rand(8, 1, 8, 8, generator=g)])
        ...            for i in range(1, 4)]
        >>> tcav = TCAV(ConvNet(), ["conv2"], save_path=tempfile.mkdtemp())
        >>> result = significance_test(tcav, torch.rand(4, 1, 8, 8), bright, randoms, target=0)
        >>> 0 <= result["conv2"].p_value <= 1
        True
    """
    if score_type not in ("sign_count", "magnitude"):
        raise ArgumentError(f"score_type must be 'sign_count' or 'magnitude', got {score_type!r}")
    if not 0 < alpha < 1:
        raise ArgumentError(f"alpha must be in (0, 1), got {alpha!r}")
    randoms = list(random_concepts)
    if len(randoms) < 2 or any(r is concept for r in randoms):
        raise ArgumentError(
            "random_concepts needs at least two concepts, none of them the tested concept"
        )
    concept_sets = [[concept, r] for r in randoms]
    random_sets = [[r, randoms[(i + 1) % len(randoms)]] for i, r in enumerate(randoms)]
    result = tcav.interpret(
        inputs, concept_sets + random_sets, target, additional_forward_args, **kwargs
    )
    out = {}
    for layer in tcav.layers:
        a = torch.stack([result[concepts_to_str(s)][layer][score_type][0] for s in concept_sets])
        b = torch.stack([result[concepts_to_str(s)][layer][score_type][0] for s in random_sets])
        t, p = ttest_ind(a, b)
        out[layer] = TCAVSignificance(concept, layer, a.cpu(), b.cpu(), t, p, alpha)
    return out


def plot_tcav_scores(
    results: Mapping[str, TCAVSignificance] | Sequence[Mapping[str, TCAVSignificance]],
    ax: Any = None,
) -> tuple[Any, Any]:
    """Bars of mean TCAV scores (± one standard deviation) of concepts and random concepts.

    One group of bars per layer: each tested concept, then the random concepts; a ``*``
    marks a concept whose scores differ significantly from the random ones. Needs matplotlib.

    Returns:
        The figure and the axes drawn on.
    """
    import matplotlib.pyplot as plt

    tests = [results] if isinstance(results, Mapping) else list(results)
    if not tests or not all(tests):
        raise ArgumentError("plot_tcav_scores needs the results of significance_test")
    layers = list(tests[0])
    fig, ax = plt.subplots() if ax is None else (ax.figure, ax)
    width = 0.8 / (len(tests) + 1)
    for j, test in enumerate(tests):
        for i, layer in enumerate(layers):
            r = test[layer]
            x = i + j * width
            ax.bar(
                x,
                float(r.scores.mean()),
                width,
                yerr=float(r.scores.std()),
                color=f"C{j}",
                label=r.concept.name if i == 0 else None,
            )
            if r.significant:
                ax.text(x, float(r.scores.mean() + r.scores.std()) + 0.02, "*", ha="center")
    randoms = torch.stack([torch.cat([t[la].random_scores for t in tests]) for la in layers])
    ax.bar(
        [i + len(tests) * width for i in range(len(layers))],
        randoms.mean(1).tolist(),
        width,
        yerr=randoms.std(1).tolist(),
        color="0.6",
        label="random",
    )
    ax.set_xticks([i + len(tests) * width / 2 for i in range(len(layers))], layers)
    ax.set_ylabel("TCAV score")
    ax.legend()
    return fig, ax
