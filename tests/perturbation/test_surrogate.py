"""The torch surrogate models and Captum's Model interface (perturbation/surrogate.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from perspicio.perturbation import surrogate as su

sklearn_lm = pytest.importorskip("sklearn.linear_model")


def _data(
    rows: int = 3, samples: int = 60, feats: int = 5, binary: bool = False, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if binary:
        x = (torch.rand(rows, samples, feats, generator=g) < 0.5).double()
    else:
        x = torch.randn(rows, samples, feats, generator=g, dtype=torch.float64)
    coef = torch.randn(rows, feats, 1, generator=g, dtype=torch.float64)
    y = (x @ coef).squeeze(2) + 0.3 + 0.1 * torch.randn(rows, samples, generator=g).double()
    w = torch.rand(rows, samples, generator=g, dtype=torch.float64) + 0.2
    return x, y, w


def _sk(estimator: object, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> tuple:
    estimator.fit(x.numpy(), y.numpy(), sample_weight=w.numpy())  # type: ignore[attr-defined]
    return estimator.coef_, estimator.intercept_  # type: ignore[attr-defined]


def test_shapley_regression_needs_the_end_points() -> None:
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    with pytest.raises(ValueError, match="empty .* and the full"):
        su.ShapleyLinearRegression().fit_batch(x, torch.ones(1, 3))


@pytest.mark.parametrize(
    ("model", "reference"),
    [
        (lambda: su.TorchLinearRegression(), lambda: sklearn_lm.LinearRegression()),
        (lambda: su.TorchRidge(alpha=0.5), lambda: sklearn_lm.Ridge(alpha=0.5)),
        (
            lambda: su.TorchLasso(alpha=0.02, tol=1e-10),
            lambda: sklearn_lm.Lasso(alpha=0.02, tol=1e-10),
        ),
    ],
)
def test_torch_models_fit_through_a_dataloader(model: object, reference: object) -> None:
    x, y, w = _data(rows=1, samples=50, seed=12)
    data = DataLoader(TensorDataset(x[0], y[0], w[0]), batch_size=16)
    m = model()  # type: ignore[operator]
    stats = m.fit(data)
    assert "train_time" in stats
    ref = _sk(reference(), x[0], y[0], w[0])  # type: ignore[operator]
    np.testing.assert_allclose(m.representation().numpy(), ref[0].reshape(1, -1), atol=1e-6)
    np.testing.assert_allclose(m.bias().numpy(), [ref[1]], atol=1e-6)
    pred = m(x[0])
    np.testing.assert_allclose(
        pred.detach().numpy()[:, 0], x[0].numpy() @ ref[0] + ref[1], atol=1e-5
    )


def test_fit_batch_keeps_the_last_row_and_uses_no_global_rng() -> None:
    x, y, w = _data(rows=3, seed=13)
    model = su.TorchLinearRegression()
    state = torch.random.get_rng_state()
    coef, intercept = model.fit_batch(x, y, w)
    assert model.representation().shape == (1, 5)
    torch.testing.assert_close(model.representation(), coef[-1:])
    torch.testing.assert_close(model.bias(), intercept[-1:])
    assert torch.equal(torch.random.get_rng_state(), state)


def test_unfitted_model_errors() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        su.TorchLasso().representation()
    assert su.TorchLasso().bias() is None


def test_linear_model_construction_errors() -> None:
    model = su.TorchLinearRegression()
    with pytest.raises(ValueError, match="norm_type"):
        model._construct_model_params(in_features=2, out_features=1, norm_type="group_norm")
    with pytest.raises(ValueError, match="in_features and out_features"):
        model._construct_model_params()
    with pytest.raises(ValueError, match="bias is False"):
        model._construct_model_params(
            weight_values=torch.ones(1, 2), bias_value=torch.ones(1), bias=False
        )


def test_collect_rejects_bad_batches() -> None:
    with pytest.raises(ValueError, match="\\(x, y\\) or \\(x, y, w\\)"):
        su.collect(DataLoader(TensorDataset(torch.ones(2, 1)), batch_size=2))


def test_fit_surrogate_batched_equals_row_by_row_model_api() -> None:
    x, y, w = _data(rows=3, seed=14)
    batched = su.fit_surrogate(su.TorchRidge(alpha=0.3), x, y, w)

    class RowByRow(su.TorchRidge):  # hides fit_batch from fit_surrogate's fast path
        pass

    rows = []
    for r in range(3):
        m = RowByRow(alpha=0.3)
        m.fit(DataLoader(TensorDataset(x[r], y[r], w[r]), batch_size=60))
        rows.append(m.representation()[0])
    torch.testing.assert_close(batched, torch.stack(rows))
