"""Linear classifiers that separate concepts' activations: their weights are the CAVs.

Two torch-native classifiers (no scikit-learn): :class:`DefaultClassifier`, a linear SVM
(L2-regularised squared hinge, one-vs-rest) fitted by Newton's method in closed-form steps,
in the role of Captum's SGD classifier; and :class:`FastCAVClassifier`, the closed form
of Schmalwasser et al. (2025), "FastCAV: Efficient Computation of Concept Activation Vectors
for Explaining Deep Neural Networks", https://arxiv.org/abs/2505.17883.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from perspicio._core.validate import ArgumentError


class Classifier(ABC):
    """A linear classifier trained on ``(activations, concept ids)`` batches.

    ``weights()`` gives one row per class (the CAVs) and ``classes()`` the class of each row.
    """

    @abstractmethod
    def __init__(self) -> None: ...

    @abstractmethod
    def train_and_eval(self, dataloader: Iterable[Any], **kwargs: Any) -> dict[str, Any] | None:
        """Fit on the ``(inputs, labels)`` batches; optionally return statistics (``accs``)."""

    @abstractmethod
    def weights(self) -> Tensor:
        """The ``(n_classes, n_features)`` weights (for two classes ``[-w, w]``)."""

    @abstractmethod
    def classes(self) -> list[int]:
        """The class (concept id) of each row of :meth:`weights`."""


def collect(dataloader: Iterable[Any]) -> tuple[Tensor, Tensor]:
    """All ``(inputs, labels)`` batches concatenated: ``(n, F)`` and ``(n,)``."""
    xs, ys = [], []
    for x, y in dataloader:
        xs.append(x.reshape(x.shape[0], -1))
        ys.append(y.reshape(-1))
    if not xs:
        raise ArgumentError("the classifier got no training examples")
    return torch.cat(xs), torch.cat(ys)


def split(
    x: Tensor, y: Tensor, test_split_ratio: float, seed: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A seeded random train/test split: ``x_train, x_test, y_train, y_test``."""
    if not 0 <= test_split_ratio < 1:
        raise ArgumentError(f"test_split_ratio must be in [0, 1), got {test_split_ratio!r}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).to(x.device)
    n_test = int(test_split_ratio * len(x))
    test, train = order[:n_test], order[n_test:]
    return x[train], x[test], y[train], y[test]


class _Linear(Classifier):
    """Shared bookkeeping: classes, the train/test split, accuracy, Captum's weight layout."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._w: Tensor | None = None  # (rows, F): one row, or one per class
        self._b: Tensor | None = None
        self._classes: Tensor | None = None

    def train_and_eval(
        self, dataloader: Iterable[Any], test_split_ratio: float = 0.33, **kwargs: Any
    ) -> dict[str, Any]:
        """Fit on a random ``1 - test_split_ratio`` share; ``accs`` on the rest (NaN if empty)."""
        x, y = collect(dataloader)
        x_train, x_test, y_train, y_test = split(x, y, test_split_ratio, self.seed)
        classes = torch.unique(y_train)
        if len(classes) < 2:
            raise ArgumentError(
                f"a CAV needs examples of at least two concepts, got only {classes.tolist()}"
            )
        self._classes = classes
        # labels as class indices 0..K-1
        self._w, self._b = self._fit(x_train.float(), torch.searchsorted(classes, y_train))
        if len(x_test) == 0:
            return {"accs": torch.tensor(float("nan"))}
        predicted = classes[self._scores(x_test.float()).argmax(1)]
        return {"accs": (predicted == y_test).float().mean().cpu()}

    def _scores(self, x: Tensor) -> Tensor:
        assert self._w is not None and self._b is not None
        s = x @ self._w.T + self._b
        return torch.cat([-s, s], 1) if self._w.shape[0] == 1 else s

    def _fit(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def weights(self) -> Tensor:
        if self._w is None:
            raise ArgumentError("the classifier has no weights yet: call train_and_eval first")
        w = self._w.detach()
        return torch.cat([-w, w]) if w.shape[0] == 1 else w

    def classes(self) -> list[int]:
        if self._classes is None:
            raise ArgumentError("the classifier has no classes yet: call train_and_eval first")
        return [int(c) for c in self._classes.tolist()]


class DefaultClassifier(_Linear):
    """A linear SVM in torch: squared hinge loss plus ``alpha / 2 * ||w||^2``.

    Fitted by Newton's method on the primal (Chapelle, 2007, "Training a Support Vector
    Machine in the Primal"): each step is a ridge regression on the examples inside the
    margin, solved in closed form, until that set stops changing; a handful of steps in
    practice. With fewer examples than features the problem is first reduced to the span of
    the examples (through their Gram matrix).
    Two concepts give one hyperplane ``w`` (weights ``[-w, w]``, as Captum lays them out);
    more give one-vs-rest hyperplanes. The split into training and test examples is seeded
    (``seed``), so the same data give the same CAV.

    Example:
        >>> import torch
        >>> from perspicio.concept import DefaultClassifier
        >>> x = torch.cat([torch.randn(20, 3) + 2, torch.randn(20, 3) - 2])
        >>> y = torch.tensor([1] * 20 + [0] * 20)
        >>> clf = DefaultClassifier()
        >>> float(clf.train_and_eval([(x, y)])["accs"])
        1.0
        >>> clf.weights().shape, clf.classes()
        (torch.Size([2, 3]), [0, 1])
    """

    def __init__(self, alpha: float = 0.01, max_iter: int = 50, seed: int = 0) -> None:
        super().__init__(seed)
        if not alpha > 0:
            raise ArgumentError(f"alpha must be positive, got {alpha!r}")
        self.alpha = alpha
        self.max_iter = max_iter

    def _fit(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        n_classes = int(labels.max()) + 1
        x64, basis = x.double(), None
        if x.shape[1] > x.shape[0]:
            x64, basis = _span(x64)
        rows = [labels == 1] if n_classes == 2 else [labels == k for k in range(n_classes)]
        fits = [self._binary(x64, torch.where(pos, 1.0, -1.0).double()) for pos in rows]
        w = torch.stack([f[0] for f in fits])
        if basis is not None:
            w = w @ basis.T
        b = torch.stack([f[1] for f in fits])
        return w.to(x.dtype), b.to(x.dtype)

    def _objective(self, x: Tensor, y: Tensor, w: Tensor, b: Tensor) -> Tensor:
        slack = (1 - y * (x @ w + b)).clamp_min(0)
        return (slack**2).mean() + self.alpha / 2 * w.dot(w)

    def _binary(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Primal Newton for one hyperplane, labels ``y`` in ``{-1, 1}``."""
        w, b = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device), y.mean() * 0
        active = torch.ones_like(y, dtype=torch.bool)
        value = self._objective(x, y, w, b)
        for _ in range(self.max_iter):
            w_new, b_new = _ridge(x[active], y[active], len(x) * self.alpha / 2)
            step = 1.0
            while step > 1e-4:  # backtrack in the rare case the full step does not descend
                w_try, b_try = w + step * (w_new - w), b + step * (b_new - b)
                new_value = self._objective(x, y, w_try, b_try)
                if new_value <= value:
                    break
                step /= 2
            else:
                break
            w, b, value = w_try, b_try, new_value
            now = y * (x @ w + b) < 1
            if torch.equal(now, active):
                break
            active = now
        return w, b


def _span(x: Tensor) -> tuple[Tensor, Tensor]:
    """``x (n, F)`` in an orthonormal basis of its rows' span: ``x = z @ basis.T``, ``z (n, r)``.

    The optimal ``w`` of a regularised linear model lies in that span (representer theorem),
    so a problem with more features than examples is solved on ``z`` and mapped back with
    ``w = basis @ v``. From the eigendecomposition of the Gram matrix ``x x^T = U L U^T``:
    ``z = U L^(1/2)`` and ``basis = x^T U L^(-1/2)``.
    """
    evals, evecs = torch.linalg.eigh(x @ x.T)
    keep = evals > evals.max().clamp_min(0) * 1e-12
    evals, evecs = evals[keep], evecs[:, keep]
    return evecs * evals.sqrt(), x.T @ (evecs / evals.sqrt())


def _ridge(x: Tensor, y: Tensor, lam: float) -> tuple[Tensor, Tensor]:
    """``argmin lam * ||w||^2 + sum (y - x w - b)^2`` with an unpenalised intercept ``b``."""
    if len(x) == 0:
        return torch.zeros(x.shape[1], dtype=x.dtype, device=x.device), y.new_zeros(())
    mx, my = x.mean(0), y.mean()
    xc, yc = x - mx, y - my
    if xc.shape[1] <= xc.shape[0]:
        eye = torch.eye(xc.shape[1], dtype=x.dtype, device=x.device)
        w = torch.linalg.solve(xc.T @ xc + lam * eye, xc.T @ yc)
    else:  # fewer examples than features: the n x n (kernel) form
        eye = torch.eye(xc.shape[0], dtype=x.dtype, device=x.device)
        w = xc.T @ torch.linalg.solve(xc @ xc.T + lam * eye, yc)
    return w, my - mx.dot(w)


class FastCAVClassifier(_Linear):
    """FastCAV (Schmalwasser et al., 2025): CAVs from class means, no iterative fitting.

    The activations are centred on their global mean ``mu``; each class's CAV is the mean of
    its centred activations, normalised to unit length (for two classes the two CAVs are
    opposite, the normalised difference of the class means). A point is assigned to the
    class whose CAV has the largest dot product with ``x - mu``. Cost: one pass over the data.

    Example:
        >>> import torch
        >>> from perspicio.concept import FastCAVClassifier
        >>> x = torch.cat([torch.randn(20, 3) + 2, torch.randn(20, 3) - 2])
        >>> y = torch.tensor([1] * 20 + [0] * 20)
        >>> clf = FastCAVClassifier()
        >>> float(clf.train_and_eval([(x, y)])["accs"])
        1.0
        >>> torch.allclose(clf.weights().norm(dim=1), torch.ones(2))
        True
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)

    def _fit(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        n_classes = int(labels.max()) + 1
        mu = x.mean(0)
        sums = torch.zeros(n_classes, x.shape[1], dtype=x.dtype, device=x.device)
        sums.index_add_(0, labels, x - mu)
        counts = torch.bincount(labels, minlength=n_classes).to(x.dtype)[:, None]
        w = sums / counts
        w = w / w.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        if n_classes == 2:
            w = w[1:]  # the two rows are opposite: keep the positive class's
        return w, -(w @ mu)
