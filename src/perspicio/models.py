"""Surrogate models with Captum's names (``captum._utils.models``): the ``Model`` interface.

The torch models (:class:`TorchLinearRegression`, :class:`TorchRidge`, :class:`TorchLasso`,
:class:`ShapleyLinearRegression`) are fitted in closed form or by batched FISTA and are what
``Lime`` and ``KernelShap`` use by default. Beside them: linear models trained by stochastic
gradient descent (``SGD*``) and wrappers around scikit-learn estimators (``SkLearn*``;
scikit-learn is imported only when such a model is fitted).

Example:
    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from perspicio.models import TorchLinearRegression
    >>> x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    >>> model = TorchLinearRegression()
    >>> _ = model.fit(DataLoader(TensorDataset(x, x @ torch.tensor([2.0, -1.0]) + 0.5)))
    >>> model.representation()
    tensor([[ 2., -1.]])
"""

from __future__ import annotations

import functools
import logging
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from perspicio._core.validate import ArgumentError
from perspicio.perturbation.surrogate import (
    LinearModel,
    Model,
    ShapleyLinearRegression,
    TorchLasso,
    TorchLinearModel,
    TorchLinearRegression,
    TorchRidge,
    collect,
)

__all__ = [
    "LinearModel",
    "Model",
    "SGDLasso",
    "SGDLinearModel",
    "SGDLinearRegression",
    "SGDRidge",
    "ShapleyLinearRegression",
    "SkLearnLasso",
    "SkLearnLinearModel",
    "SkLearnLinearRegression",
    "SkLearnLogisticRegression",
    "SkLearnRidge",
    "SkLearnSGDClassifier",
    "TorchLasso",
    "TorchLinearModel",
    "TorchLinearRegression",
    "TorchRidge",
    "l2_loss",
    "sgd_train_linear_model",
    "sklearn_train_linear_model",
]

_log = logging.getLogger(__name__)


def l2_loss(x1: Tensor, x2: Tensor, weights: Tensor | None = None) -> Tensor:
    """Half the (weighted) mean squared difference; weights are normalised to sum to one."""
    sq = (x1 - x2) ** 2
    if weights is None:
        return sq.mean() / 2
    return (weights / weights.abs().sum() * sq).sum() / 2


def _init_sgd_model(
    model: LinearModel, x: Tensor, y: Tensor, construct_kwargs: dict[str, Any], init_scheme: str
) -> nn.Linear:
    if init_scheme not in ("zeros", "xavier"):
        raise ArgumentError(f"init_scheme must be 'zeros' or 'xavier', got {init_scheme!r}")
    model._construct_model_params(
        in_features=x.shape[1], out_features=y.shape[1] if y.dim() == 2 else 1, **construct_kwargs
    )
    assert model.linear is not None
    with torch.no_grad():
        if init_scheme == "xavier":
            nn.init.xavier_uniform_(model.linear.weight)
        else:
            model.linear.weight.zero_()
        if model.linear.bias is not None:
            model.linear.bias.zero_()
    return model.linear


def sgd_train_linear_model(
    model: LinearModel,
    dataloader: DataLoader,
    construct_kwargs: dict[str, Any],
    max_epoch: int = 100,
    reduce_lr: bool = True,
    initial_lr: float = 0.01,
    alpha: float = 1.0,
    loss_fn: Callable[[Tensor, Tensor, Tensor | None], Tensor] = l2_loss,
    reg_term: int | None = 1,
    patience: int = 10,
    threshold: float = 1e-4,
    running_loss_window: int | None = None,
    device: str | None = None,
    init_scheme: str = "zeros",
    debug: bool = False,
) -> dict[str, float]:
    """Train ``model`` by SGD on ``loss_fn + alpha · ‖W‖_reg_term`` until the loss settles.

    Stops after ``max_epoch`` passes over ``dataloader``, or once the running mean of the loss
    (over the last ``running_loss_window`` steps, by default the number of samples in an
    epoch) has not improved by ``threshold`` for ``patience`` steps; ``reduce_lr`` halves the
    learning rate on plateaus. ``debug`` logs every step at DEBUG level. Returns
    ``train_time``, ``train_loss`` (the final running mean), ``train_iter`` and ``train_epoch``.
    """
    first = next(iter(dataloader))
    window = running_loss_window or int(first[0].shape[0]) * len(dataloader)
    linear = _init_sgd_model(model, first[0], first[1], construct_kwargs, init_scheme)
    if device is not None:
        model.to(device)
    model.train()
    optim = torch.optim.SGD(model.parameters(), lr=initial_lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optim, factor=0.5, patience=patience, threshold=threshold
    )
    recent: list[Tensor] = []
    best, stale, step, epoch = math.inf, 0, 0, 0
    start = time.perf_counter()
    with torch.enable_grad():
        while epoch < max_epoch and stale < patience:
            for batch in dataloader:
                x, y, w = _triple(batch, device)
                loss = loss_fn(y, model(x), w)
                if reg_term is not None:
                    loss = loss + alpha * torch.norm(linear.weight, p=reg_term)
                recent = [*recent[1 - window :], loss.detach()] if window > 1 else [loss.detach()]
                avg = float(torch.stack(recent).mean())
                step += 1
                stale = 0 if avg < best - threshold else stale + 1
                best = min(best, avg)
                if debug:
                    _log.debug("step %d lr %g loss %g", step, optim.param_groups[0]["lr"], avg)
                if stale >= patience:
                    break
                optim.zero_grad()
                loss.backward()
                optim.step()
                if reduce_lr:
                    sched.step(avg)
            epoch += 1
    return {
        "train_time": time.perf_counter() - start,
        "train_loss": float(torch.stack(recent).mean()) if recent else math.nan,
        "train_iter": step,
        "train_epoch": epoch,
    }


def _triple(batch: Any, device: str | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(x, y, w)`` from a batch, with ``y`` and ``w`` as columns, on ``device``."""
    if len(batch) not in (2, 3):
        raise ArgumentError(f"batches must be (x, y) or (x, y, w), got {len(batch)} tensors")
    x = batch[0] if device is None else batch[0].to(device)
    col = lambda t: t.to(x.device).reshape(len(x), -1)  # noqa: E731
    return x, col(batch[1]), col(batch[2]) if len(batch) == 3 else None


class SGDLinearModel(LinearModel):
    """A ``LinearModel`` trained by :func:`sgd_train_linear_model`; ``kwargs`` construct it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(train_fn=sgd_train_linear_model, **kwargs)


class SGDLasso(SGDLinearModel):
    """SGD on the L2 loss plus ``alpha · ‖W‖₁`` (the weights are not exactly sparse)."""

    def fit(self, train_data: DataLoader, **kwargs: Any) -> Any:
        return super().fit(train_data, loss_fn=l2_loss, reg_term=1, **kwargs)


class SGDRidge(SGDLinearModel):
    """SGD on the L2 loss plus ``alpha · ‖W‖₂``."""

    def fit(self, train_data: DataLoader, **kwargs: Any) -> Any:
        return super().fit(train_data, loss_fn=l2_loss, reg_term=2, **kwargs)


class SGDLinearRegression(SGDLinearModel):
    """SGD on the L2 loss without regularisation."""

    def fit(self, train_data: DataLoader, **kwargs: Any) -> Any:
        return super().fit(train_data, loss_fn=l2_loss, reg_term=None, **kwargs)


def _sklearn_estimator(spec: Any, kwargs: dict[str, Any]) -> Any:
    """An unfitted scikit-learn estimator from a dotted name, a class or an instance."""
    try:
        import sklearn
        import sklearn.base
        import sklearn.linear_model
        import sklearn.svm  # so that "svm.LinearSVC" resolves
    except ImportError:
        raise ImportError("this model needs scikit-learn: pip install scikit-learn") from None
    if isinstance(spec, str):
        try:
            cls = functools.reduce(getattr, spec.split("."), sklearn)
        except AttributeError:
            raise ArgumentError(f"scikit-learn has no estimator {spec!r}") from None
        return cls(**kwargs)
    if isinstance(spec, type):
        return spec(**kwargs)
    if not hasattr(spec, "fit"):
        raise TypeError(f"expected a scikit-learn estimator, its class or its name, got {spec!r}")
    return sklearn.base.clone(spec).set_params(**kwargs)


def sklearn_train_linear_model(
    model: LinearModel,
    dataloader: DataLoader,
    construct_kwargs: dict[str, Any],
    sklearn_trainer: Any = "Lasso",
    norm_input: bool = False,
    **fit_kwargs: Any,
) -> dict[str, float]:
    """Fit a scikit-learn linear estimator on the whole DataLoader and copy its weights.

    ``sklearn_trainer`` is a name under ``sklearn`` (``"linear_model.Lasso"``), an estimator
    class or an unfitted instance; ``construct_kwargs`` are its constructor arguments. Sample
    weights are passed when the estimator accepts them (a warning says when it does not).
    ``norm_input`` standardises the inputs first (the model keeps the standardisation).
    """
    import numpy as np

    x, y, w = collect(dataloader)
    xn, yn = x.detach().cpu().numpy(), y.detach().cpu().numpy()
    mean = std = None
    if norm_input:
        mean, std = xn.mean(0), xn.std(0)
        xn = (xn - mean) / std
    estimator = _sklearn_estimator(sklearn_trainer, construct_kwargs)
    start = time.perf_counter()
    try:
        estimator.fit(xn, yn, sample_weight=None if w is None else w.cpu().numpy(), **fit_kwargs)
    except TypeError:
        estimator.fit(xn, yn, **fit_kwargs)
        warnings.warn(
            f"{type(estimator).__name__}.fit takes no sample_weight: trained without weights",
            stacklevel=2,
        )
    elapsed = time.perf_counter() - start
    as_t: Callable[[Any], Tensor] = lambda a: torch.as_tensor(  # noqa: E731
        np.asarray(a), dtype=torch.float32, device=x.device
    )
    coef = as_t(estimator.coef_)
    classes = getattr(estimator, "classes_", None)
    model._construct_model_params(
        weight_values=coef.reshape(-1, coef.shape[-1]),
        bias_value=as_t(estimator.intercept_).reshape(-1),
        classes=None if classes is None else torch.as_tensor(np.asarray(classes)),
    )
    if norm_input:
        model.norm = _Standardize(torch.as_tensor(mean), torch.as_tensor(std))
    return {"train_time": elapsed}


class _Standardize(nn.Module):
    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / (self.std + 1e-8)


class SkLearnLinearModel(LinearModel):
    """A ``LinearModel`` fitted by a scikit-learn estimator.

    Args:
        sklearn_module: a name under ``sklearn`` (``"linear_model.Lasso"``, ``"svm.LinearSVC"``)
            or, beyond Captum, any scikit-learn linear estimator class or unfitted instance.
        **kwargs: constructor arguments of the estimator.
    """

    def __init__(self, sklearn_module: Any, **kwargs: Any) -> None:
        super().__init__(train_fn=sklearn_train_linear_model, **kwargs)
        self.sklearn_module = sklearn_module

    def fit(self, train_data: DataLoader, **kwargs: Any) -> Any:
        """Fit on all of ``train_data``; ``kwargs`` go to the estimator's ``fit``."""
        return super().fit(train_data, sklearn_trainer=self.sklearn_module, **kwargs)


class SkLearnLasso(SkLearnLinearModel):
    """scikit-learn's ``Lasso`` (scikit-learn >= 0.23 for sample weights)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("linear_model.Lasso", **kwargs)


class SkLearnRidge(SkLearnLinearModel):
    """scikit-learn's ``Ridge``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("linear_model.Ridge", **kwargs)


class SkLearnLinearRegression(SkLearnLinearModel):
    """scikit-learn's ``LinearRegression``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("linear_model.LinearRegression", **kwargs)


class SkLearnLogisticRegression(SkLearnLinearModel):
    """scikit-learn's ``LogisticRegression``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("linear_model.LogisticRegression", **kwargs)


class SkLearnSGDClassifier(SkLearnLinearModel):
    """scikit-learn's ``SGDClassifier``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("linear_model.SGDClassifier", **kwargs)
