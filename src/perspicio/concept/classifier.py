"""Linear classifiers that separate concepts' activations: their weights are the CAVs.

Two torch-native classifiers (no scikit-learn): :class:`DefaultClassifier`, a linear SVM
(L2-regularised squared hinge, one-vs-rest) fitted by L-BFGS on the whole training set at
once, in the role of Captum's SGD classifier; and :class:`FastCAVClassifier`, the closed form
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
    """A linear SVM in torch: squared hinge loss plus ``alpha / 2 * ||w||^2``, by L-BFGS.

    Two concepts give one hyperplane ``w`` (weights ``[-w, w]``, as Captum lays them out);
    more give one-vs-rest hyperplanes, all fitted together. The split into training and test
    examples is seeded (``seed``), so the same data give the same CAV.

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

    def __init__(self, alpha: float = 0.01, max_iter: int = 100, seed: int = 0) -> None:
        super().__init__(seed)
        if not alpha > 0:
            raise ArgumentError(f"alpha must be positive, got {alpha!r}")
        self.alpha = alpha
        self.max_iter = max_iter

    def _fit(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        n_classes = int(labels.max()) + 1
        if n_classes == 2:
            signs = (labels * 2 - 1).to(x.dtype)[:, None]  # (n, 1)
        else:
            signs = torch.where(
                labels[:, None] == torch.arange(n_classes, device=x.device), 1.0, -1.0
            ).to(x.dtype)  # (n, K)
        rows = signs.shape[1]
        wb = torch.zeros(rows, x.shape[1] + 1, dtype=x.dtype, device=x.device, requires_grad=True)
        opt = torch.optim.LBFGS(
            [wb], max_iter=self.max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-6
        )

        def loss() -> Tensor:
            opt.zero_grad()
            margin = signs * (x @ wb[:, :-1].T + wb[:, -1])
            value = (margin.neg().add(1).clamp_min(0) ** 2).mean(0).sum()
            value = value + self.alpha / 2 * (wb[:, :-1] ** 2).sum()
            value.backward()
            return value

        with torch.enable_grad():
            opt.step(loss)
        wb = wb.detach()
        return wb[:, :-1], wb[:, -1]


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
