"""The public surrogate models: SGD-trained, scikit-learn wrappers, re-exports (models.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from perspicio import models

sklearn_lm = pytest.importorskip("sklearn.linear_model")


def _loader(
    n: int = 64, batch_size: int = 64, weights: bool = True, seed: int = 0
) -> tuple[DataLoader, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([1.5, -2.0, 0.5]) + 0.25
    w = torch.rand(n, generator=g) + 0.5
    data = TensorDataset(x, y, w) if weights else TensorDataset(x, y)
    return DataLoader(data, batch_size=batch_size), x, y, w


def test_public_names() -> None:
    for name in models.__all__:
        assert hasattr(models, name), name
    assert issubclass(models.TorchLasso, models.LinearModel)
    assert issubclass(models.LinearModel, models.Model)


def test_l2_loss() -> None:
    a, b = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [0.0]])
    assert float(models.l2_loss(a, b)) == pytest.approx((1 + 9) / 2 / 2)
    w = torch.tensor([[1.0], [3.0]])
    assert float(models.l2_loss(a, b, w)) == pytest.approx((0.25 * 1 + 0.75 * 9) / 2)


def test_sgd_linear_regression_learns_a_linear_map() -> None:
    data, *_ = _loader(batch_size=16, weights=False)
    model = models.SGDLinearRegression()
    torch.manual_seed(0)
    stats = model.fit(data, max_epoch=300, initial_lr=0.1)
    assert set(stats) == {"train_time", "train_loss", "train_iter", "train_epoch"}
    np.testing.assert_allclose(model.representation().numpy(), [[1.5, -2.0, 0.5]], atol=0.05)
    assert float(model.bias()) == pytest.approx(0.25, abs=0.05)


@pytest.mark.parametrize(("cls", "reg"), [(models.SGDLasso, 1), (models.SGDRidge, 2)])
def test_sgd_regularised_models_shrink(cls: type, reg: int) -> None:
    data, *_ = _loader(batch_size=16)
    plain = models.SGDLinearRegression()
    plain.fit(data, max_epoch=100, initial_lr=0.1)
    shrunk = cls()
    shrunk.fit(data, max_epoch=100, initial_lr=0.1, alpha=0.5)
    assert shrunk.representation().norm(p=reg) < plain.representation().norm(p=reg)


def test_sgd_trainer_options() -> None:
    data, *_ = _loader(batch_size=32)
    model = models.SGDLinearModel(norm_type="layer_norm")
    stats = models.sgd_train_linear_model(
        model, data, model.construct_kwargs, max_epoch=2, init_scheme="xavier", debug=True
    )
    assert stats["train_epoch"] <= 2 and isinstance(model.norm, torch.nn.LayerNorm)
    with pytest.raises(ValueError, match="init_scheme"):
        models.sgd_train_linear_model(model, data, {}, init_scheme="normal")


def test_sklearn_lasso_wrapper_equals_sklearn_and_torch_lasso() -> None:
    data, x, y, w = _loader()
    wrapped = models.SkLearnLasso(alpha=0.05)
    wrapped.fit(data)
    ref = sklearn_lm.Lasso(alpha=0.05).fit(x.numpy(), y.numpy(), sample_weight=w.numpy())
    np.testing.assert_allclose(wrapped.representation().numpy()[0], ref.coef_, atol=1e-6)
    np.testing.assert_allclose(wrapped.bias().numpy(), [ref.intercept_], atol=1e-6)
    ours = models.TorchLasso(alpha=0.05)
    ours.fit(data)
    np.testing.assert_allclose(ours.representation().numpy(), wrapped.representation(), atol=1e-3)


@pytest.mark.parametrize(
    "spec",
    ["linear_model.Ridge", sklearn_lm.Ridge, sklearn_lm.Ridge(fit_intercept=True)],
    ids=["name", "class", "instance"],
)
def test_sklearn_linear_model_accepts_name_class_or_instance(spec: object) -> None:
    data, x, y, w = _loader()
    model = models.SkLearnLinearModel(spec, alpha=2.0)
    model.fit(data)
    ref = sklearn_lm.Ridge(alpha=2.0).fit(x.numpy(), y.numpy(), sample_weight=w.numpy())
    np.testing.assert_allclose(model.representation().numpy()[0], ref.coef_, atol=1e-5)


def test_sklearn_classifiers_keep_their_classes() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 2, generator=g)
    y = (x[:, 0] > 0).long()
    data = DataLoader(TensorDataset(x, y), batch_size=40)
    for model in (models.SkLearnLogisticRegression(), models.SkLearnSGDClassifier(max_iter=50)):
        model.fit(data)
        assert model.classes().tolist() == [0, 1]
        assert model.representation().shape == (1, 2)


def test_sklearn_norm_input_and_unweighted_estimators() -> None:
    data, x, *_ = _loader()
    model = models.SkLearnLinearRegression()
    model.fit(data, norm_input=True)
    assert model(x).shape == (64, 1)
    with pytest.warns(UserWarning, match="no sample_weight"):
        models.SkLearnLinearModel("linear_model.Lars").fit(data)


def test_sklearn_bad_estimators() -> None:
    data, *_ = _loader()
    with pytest.raises(ValueError, match="no estimator"):
        models.SkLearnLinearModel("linear_model.NoSuchThing").fit(data)
    with pytest.raises(TypeError, match="scikit-learn estimator"):
        models.SkLearnLinearModel(42).fit(data)
