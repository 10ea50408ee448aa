"""Surrogate linear models for LIME and Kernel SHAP (Ribeiro et al., 2016; Lundberg & Lee, 2017).

Captum's ``Model`` interface (``fit(dataloader)``, ``representation()``, ``__call__``):
``Model``, ``LinearModel`` and our torch models ``TorchLinearRegression``, ``TorchRidge``,
``TorchLasso`` and ``ShapleyLinearRegression``, which also fit a whole batch of rows at once
(``fit_batch``) with the batched solvers of :mod:`perspicio.perturbation.regression`. The SGD
and scikit-learn models and the public names are in :mod:`perspicio.models`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from perspicio._core.validate import ArgumentError
from perspicio.perturbation.regression import (
    fit_lasso,
    fit_least_squares,
    fit_ridge,
    fit_shapley,
)


class Model(ABC):
    """A trainable model, as LIME's interpretable model: ``fit``, ``representation``, call."""

    @abstractmethod
    def fit(self, train_data: DataLoader, **kwargs: Any) -> dict[str, Any] | None:
        """Train on a DataLoader of ``(x, y)`` or ``(x, y, w)`` batches; optional statistics."""

    @abstractmethod
    def representation(self) -> Tensor:
        """The fitted model's description (for a linear model, its weights)."""

    @abstractmethod
    def __call__(self, x: Any) -> Any:
        """Predict for a batch of inputs."""


class LinearModel(nn.Module, Model):
    """A linear model ``x ↦ W·norm(x) + b`` trained by ``train_fn``.

    ``train_fn(model, dataloader=..., construct_kwargs=..., **fit_kwargs)`` trains the model;
    it calls ``_construct_model_params`` (with ``construct_kwargs``) to create the parameters.
    """

    SUPPORTED_NORMS: ClassVar[list[str | None]] = [None, "batch_norm", "layer_norm"]

    def __init__(self, train_fn: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__()
        self.norm: nn.Module | None = None
        self.linear: nn.Linear | None = None
        self.train_fn = train_fn
        self.construct_kwargs = kwargs

    def _construct_model_params(
        self,
        in_features: int | None = None,
        out_features: int | None = None,
        norm_type: str | None = None,
        affine_norm: bool = False,
        bias: bool = True,
        weight_values: Tensor | None = None,
        bias_value: Tensor | None = None,
        classes: Tensor | None = None,
    ) -> None:
        """Create the parameters, from sizes (randomly initialised) or from given values."""
        if norm_type not in self.SUPPORTED_NORMS:
            raise ArgumentError(
                f"norm_type must be one of {self.SUPPORTED_NORMS}, got {norm_type!r}"
            )
        if weight_values is not None:
            weight_values = weight_values.reshape(-1, weight_values.shape[-1])
            out_features, in_features = weight_values.shape
        if in_features is None or out_features is None:
            raise ArgumentError("give in_features and out_features, or weight_values")
        if norm_type == "batch_norm":
            self.norm = nn.BatchNorm1d(in_features, eps=1e-8, affine=affine_norm)
        elif norm_type == "layer_norm":
            self.norm = nn.LayerNorm(in_features, eps=1e-8, elementwise_affine=affine_norm)
        else:
            self.norm = None
        if bias_value is not None and not bias:
            raise ArgumentError("bias_value was given but bias is False")
        # given values need no random initialisation (which would consume the global RNG)
        device = "meta" if weight_values is not None else None
        self.linear = nn.Linear(in_features, out_features, bias=bias, device=device)
        if weight_values is not None:
            self.linear.weight = nn.Parameter(weight_values.detach().clone())
            if bias:
                zero = weight_values.new_zeros(out_features)
                value = zero if bias_value is None else bias_value.detach().reshape(-1).clone()
                self.linear.bias = nn.Parameter(value.to(weight_values.dtype) + zero)
        elif bias_value is not None and self.linear.bias is not None:
            with torch.no_grad():
                self.linear.bias.copy_(bias_value.reshape(-1))
        self.classes_ = classes

    def fit(self, train_data: DataLoader, **kwargs: Any) -> Any:
        """Train with ``train_fn``; returns its statistics."""
        return self.train_fn(
            self, dataloader=train_data, construct_kwargs=self.construct_kwargs, **kwargs
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.linear is None:
            raise RuntimeError("the linear model is not fitted yet: call fit first")
        if self.norm is not None:
            x = self.norm(x)
        return self.linear(x)

    def representation(self) -> Tensor:
        """The weights, ``(out_features, in_features)`` (the bias is in :meth:`bias`)."""
        if self.linear is None:
            raise RuntimeError("the linear model is not fitted yet: call fit first")
        return self.linear.weight.detach()

    def bias(self) -> Tensor | None:
        """The intercept, or ``None`` before fitting or without bias."""
        if self.linear is None or self.linear.bias is None:
            return None
        return self.linear.bias.detach()

    def classes(self) -> Tensor | None:
        """The class labels of a fitted classifier, else ``None``."""
        classes = getattr(self, "classes_", None)
        return None if classes is None else classes.detach()


def collect(dataloader: DataLoader) -> tuple[Tensor, Tensor, Tensor | None]:
    """Concatenate a DataLoader of ``(x, y)`` or ``(x, y, w)`` batches."""
    xs, ys, ws = [], [], []
    for batch in dataloader:
        if len(batch) not in (2, 3):
            raise ArgumentError(f"batches must be (x, y) or (x, y, w), got {len(batch)} tensors")
        xs.append(batch[0])
        ys.append(batch[1])
        if len(batch) == 3:
            ws.append(batch[2])
    if not xs:
        raise ArgumentError("the training DataLoader is empty")
    return torch.cat(xs), torch.cat(ys), torch.cat(ws) if ws else None


def _train_torch(
    model: TorchLinearModel, dataloader: DataLoader, construct_kwargs: dict[str, Any]
) -> dict[str, float]:
    """``train_fn`` of the torch models: one batched fit of the whole DataLoader."""
    start = time.perf_counter()
    x, y, w = collect(dataloader)
    if x.dim() != 2 or y.reshape(len(y), -1).shape[1] != 1:
        raise ArgumentError(
            f"expected 2-D inputs and one target per sample, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    model.fit_batch(x.unsqueeze(0), y.reshape(1, -1), None if w is None else w.reshape(1, -1))
    return {"train_time": time.perf_counter() - start}


class TorchLinearModel(LinearModel):
    """A linear surrogate fitted in torch; ``fit_batch`` fits many independent rows at once."""

    def __init__(self) -> None:
        super().__init__(train_fn=_train_torch)
        self._fitted: tuple[Tensor, Tensor] | None = None

    def solve(self, x: Tensor, y: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def fit_batch(self, x: Tensor, y: Tensor, w: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Fit ``R`` models from ``x`` (R, S, M), ``y`` (R, S), ``w`` (R, S); ``x`` and ``w`` may
        have a first dimension of 1 (shared by every row).

        Returns the coefficients (R, M) and intercepts (R,); the model keeps the last row's
        (its ``linear`` layer is built from them when first needed).
        """
        coef, intercept = self.solve(x, y, w)
        self._fitted, self.linear = (coef[-1:], intercept[-1:]), None
        return coef, intercept

    def _built(self) -> None:
        if self.linear is None and self._fitted is not None:
            coef, intercept = self._fitted
            self._construct_model_params(weight_values=coef, bias_value=intercept)

    def forward(self, x: Tensor) -> Tensor:
        self._built()
        return super().forward(x)

    def representation(self) -> Tensor:
        self._built()
        return super().representation()

    def bias(self) -> Tensor | None:
        self._built()
        return super().bias()


class TorchLinearRegression(TorchLinearModel):
    """Weighted least squares in closed form (scikit-learn's ``LinearRegression``)."""

    def __init__(self, fit_intercept: bool = True) -> None:
        super().__init__()
        self.fit_intercept = fit_intercept

    def solve(self, x: Tensor, y: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
        return fit_least_squares(x, y, w, self.fit_intercept)


class TorchRidge(TorchLinearModel):
    """Weighted ridge regression in closed form (scikit-learn's ``Ridge`` objective)."""

    def __init__(self, alpha: float = 1.0, fit_intercept: bool = True) -> None:
        super().__init__()
        self.alpha, self.fit_intercept = alpha, fit_intercept

    def solve(self, x: Tensor, y: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
        return fit_ridge(x, y, w, self.alpha, self.fit_intercept)


class TorchLasso(TorchLinearModel):
    """Weighted lasso by batched FISTA, with scikit-learn's ``Lasso`` objective and stopping rule.

    ``Lime``'s default interpretable model (``TorchLasso(alpha=0.01)`` in place of Captum's
    ``SkLearnLasso(alpha=0.01)``: the same objective, no scikit-learn needed).
    """

    def __init__(
        self,
        alpha: float = 1.0,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-4,
    ) -> None:
        super().__init__()
        self.alpha, self.fit_intercept = alpha, fit_intercept
        self.max_iter, self.tol = max_iter, tol

    def solve(self, x: Tensor, y: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
        return fit_lasso(x, y, w, self.alpha, self.fit_intercept, self.max_iter, self.tol)


class ShapleyLinearRegression(TorchLinearModel):
    """Kernel SHAP's surrogate: least squares on binary coalitions under efficiency constraints.

    The samples must include the empty and the full coalition; the fit passes exactly through
    both, so the coefficients sum to ``f(full) − f(∅)`` (see :func:`fit_shapley`).
    """

    def solve(self, x: Tensor, y: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
        coef, intercept = fit_shapley(x, y, w)
        if not bool(torch.isfinite(intercept).all() and torch.isfinite(coef).all()):
            raise ArgumentError(
                "ShapleyLinearRegression needs the empty (all zeros) and the full (all ones) "
                "coalition among the samples of every row"
            )
        return coef, intercept


def fit_surrogate(model: Any, x: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """Fit one surrogate per row (``x`` (R or 1, S, M), ``y`` (R, S), ``w`` (R or 1, S)).

    Torch models fit all rows at once; any other ``Model`` is fitted row by row through its
    ``fit(DataLoader)`` and read through ``representation()``, as Captum does. Returns the
    ``(R, ·)`` results.
    """
    if isinstance(model, TorchLinearModel):
        return model.fit_batch(x, y, w)[0]
    x, w = x.to(y.dtype), w.to(y.dtype)
    reps = []
    for r in range(y.shape[0]):
        data = TensorDataset(x[min(r, len(x) - 1)], y[r], w[min(r, len(w) - 1)])
        model.fit(DataLoader(data, batch_size=len(data)))
        reps.append(torch.as_tensor(model.representation()).reshape(-1).to(y.device))
    return torch.stack(reps) if reps else y.new_zeros(0, x.shape[-1])  # no rows to fit
