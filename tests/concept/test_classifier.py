"""The torch classifiers: the SVM reaches its optimum, FastCAV is its closed form."""

from __future__ import annotations

import pytest
import torch
from torch.nn.functional import cosine_similarity

from perspicio import ArgumentError
from perspicio.concept import TCAV, DefaultClassifier, FastCAVClassifier
from perspicio.concept.classifier import split
from tests.concept.conftest import texture_concept


def _objective(x, y, w, b, alpha):
    return ((1 - y * (x @ w + b)).clamp_min(0) ** 2).mean() + alpha / 2 * w.dot(w)


@pytest.mark.parametrize(("n", "f"), [(40, 100), (200, 10), (30, 4)])
def test_svm_reaches_the_optimum(n: int, f: int) -> None:
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, f, generator=g)
    y = (x[:, 0] + 0.7 * torch.randn(n, generator=g) > 0).long()
    clf = DefaultClassifier(alpha=0.05)
    clf.train_and_eval([(x, y)])
    xtr, _, ytr, _ = split(x, y, 0.33, 0)
    xs, ys = xtr.double(), (ytr * 2 - 1).double()
    # reference: L-BFGS run to convergence on the same objective
    wb = torch.zeros(f + 1, dtype=torch.double, requires_grad=True)
    opt = torch.optim.LBFGS(
        [wb],
        max_iter=300,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
    )

    def closure():
        opt.zero_grad()
        v = _objective(xs, ys, wb[:-1], wb[-1], 0.05)
        v.backward()
        return v

    opt.step(closure)
    w = clf.weights()[1].double()
    ours = _objective(xs, ys, w, clf._b[0].double(), 0.05)
    best = _objective(xs, ys, wb[:-1].detach(), wb[-1].detach(), 0.05)
    assert ours <= best + 1e-6
    assert cosine_similarity(w, wb[:-1].detach(), 0) > 0.999
    torch.testing.assert_close(clf.weights()[0], -clf.weights()[1])


def test_multiclass_one_vs_rest_and_class_order() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(3) * 4
    x = torch.cat([torch.randn(30, 3, generator=g) + c for c in centres])
    y = torch.tensor([7] * 30 + [2] * 30 + [5] * 30)
    for clf in (DefaultClassifier(), FastCAVClassifier()):
        stats = clf.train_and_eval([(x[:45], y[:45]), (x[45:], y[45:])])
        assert clf.classes() == [2, 5, 7]
        assert clf.weights().shape == (3, 3)
        assert float(stats["accs"]) == 1.0
        # the row of class 7 points to its centre (axis 0)
        assert clf.weights()[2].argmax() == 0


def test_fastcav_is_the_normalised_mean_difference() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 6, generator=g)
    y = torch.tensor([3] * 20 + [9] * 30)
    clf = FastCAVClassifier()
    clf.train_and_eval([(x, y)], test_split_ratio=0.0)
    mu = x.mean(0)
    for row, c in zip(clf.weights(), (3, 9)):
        v = (x[y == c] - mu).mean(0)
        torch.testing.assert_close(row, v / v.norm())


def test_fastcav_agrees_with_the_svm_on_isotropic_classes() -> None:
    g = torch.Generator().manual_seed(2)
    shift = torch.randn(32, generator=g) * 0.5
    x = torch.cat([torch.randn(200, 32, generator=g) + shift, torch.randn(200, 32, generator=g)])
    y = torch.tensor([1] * 200 + [0] * 200)
    svm, fast = DefaultClassifier(), FastCAVClassifier()
    svm.train_and_eval([(x, y)])
    fast.train_and_eval([(x, y)])
    assert cosine_similarity(svm.weights()[1], fast.weights()[1], 0) >= 0.9


def test_fastcav_agrees_with_the_svm_on_texture_concepts(texture_net, tmp_path) -> None:
    stripes = texture_concept(0, "stripes", "stripes", 100)
    randoms = [texture_concept(10 + i, f"random_{i}", None, 200 + i) for i in range(3)]
    sets = [[stripes, r] for r in randoms]

    def cavs(classifier, where):
        tcav = TCAV(
            texture_net,
            "features.3",
            classifier=classifier,
            save_path=str(where),
            pooling=lambda t: t.amax((2, 3)),
        )
        return [c["features.3"].stats["weights"][1] for c in tcav.compute_cavs(sets).values()]

    for a, b in zip(cavs(None, tmp_path / "svm"), cavs(FastCAVClassifier(), tmp_path / "fast")):
        assert cosine_similarity(a, b, 0) >= 0.9


def test_bad_input() -> None:
    x, y = torch.randn(10, 2), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ArgumentError, match="at least two concepts"):
        DefaultClassifier().train_and_eval([(x, y)])
    with pytest.raises(ArgumentError, match="no training examples"):
        FastCAVClassifier().train_and_eval([])
    with pytest.raises(ArgumentError, match="test_split_ratio"):
        FastCAVClassifier().train_and_eval([(x, y)], test_split_ratio=1.0)
    with pytest.raises(ArgumentError, match="alpha"):
        DefaultClassifier(alpha=0)
    with pytest.raises(ArgumentError, match="call train_and_eval first"):
        DefaultClassifier().weights()
