"""Lime, LimeBase and KernelShap give Captum's numbers on the same samples.

Both libraries draw their samples at random (from different streams), so the comparisons
feed both the same deterministic coalitions through a custom ``perturb_func``; our default
batched path is checked against that one-sample protocol in ``tests/perturbation``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import Tensor

from perspicio import attr as ours
from perspicio import models as our_models
from perspicio.attr._core import lime as our_lime  # the path ported code imports from
from perspicio.testing import BasicLinearModel, MultiInputModel, ReLUMLP

captum_attr = pytest.importorskip("captum.attr")
captum_lime = pytest.importorskip("captum.attr._core.lime")
captum_models = pytest.importorskip("captum._utils.models.linear_model")
pytest.importorskip("sklearn")

MLP, MULTI = ReLUMLP(), MultiInputModel()
G = torch.Generator().manual_seed(30)
X = torch.randn(3, 6, generator=G)
XS = (torch.randn(2, 4, generator=G), torch.randn(2, 3, generator=G))
SCALE = torch.rand(2, generator=G) + 0.5
GROUPS = torch.tensor([[0, 0, 1, 2, 2, 3]])
CROSS = (torch.tensor([[0, 1, 1, 2]]), torch.tensor([[2, 3, 0]]))
COALITIONS = (torch.rand(60, 8, generator=G) < 0.5).long()


def fixed_coalitions(original_inp: Any, **kwargs: Any) -> Iterator[Tensor]:
    """The same coalitions, one per call, for every example (and both libraries)."""
    m = int(kwargs["num_interp_features"])
    for row in COALITIONS:
        yield row[:m].reshape(1, m)


def close(a: Any, b: Any, atol: float = 1e-5) -> None:
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y.to(x.dtype), atol=atol, rtol=1e-4)


def captum(cls: str, *args: Any, **ctor: Any) -> Any:
    return getattr(captum_attr, cls)(*args, **ctor)


def quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def big_mlp(x: Tensor) -> Tensor:
    """Larger outputs, so that the lasso keeps most coefficients."""
    return MLP(x) * 20


CASES = [
    (MLP, X, {"target": [0, 2, 1]}),
    (big_mlp, X, {"target": [0, 2, 1]}),
    (big_mlp, X, {"target": 1, "feature_mask": GROUPS, "baselines": 0.2}),
    (MLP, X, {"target": 1, "feature_mask": GROUPS, "baselines": 0.2}),
    (MLP, X, {"target": 0, "feature_mask": GROUPS, "return_input_shape": False}),
    (MULTI, XS, {"target": 2, "feature_mask": CROSS, "additional_forward_args": (SCALE,)}),
    (MULTI, XS, {"target": 1, "baselines": (0.1, torch.ones(1, 3))}),
]


@pytest.mark.parametrize(("model", "inputs", "kw"), CASES)
@pytest.mark.parametrize(
    ("surrogate", "atol"),
    [("linear", 1e-4), ("sklearn-lasso", 1e-5), ("torch-lasso", 2e-3)],
)
def test_lime_same_samples(
    model: Any, inputs: Any, kw: dict[str, Any], surrogate: str, atol: float
) -> None:
    theirs_model = (
        captum_models.SkLearnLinearRegression()
        if surrogate == "linear"
        else captum_models.SkLearnLasso(alpha=0.01)
    )
    our_model = {
        "linear": our_models.TorchLinearRegression(),
        "sklearn-lasso": our_models.SkLearnLasso(alpha=0.01),
        "torch-lasso": our_models.TorchLasso(alpha=0.01),
    }[surrogate]
    n = 40
    theirs = quiet(
        captum("Lime", model, theirs_model, perturb_func=fixed_coalitions).attribute,
        inputs, n_samples=n, **kw,
    )  # fmt: skip
    got = ours.Lime(model, our_model, perturb_func=fixed_coalitions).attribute(
        inputs, n_samples=n, **kw
    )
    close(got, theirs, atol=atol)


@pytest.mark.parametrize("mode", ["cosine", "euclidean"])
def test_lime_kernels(mode: str) -> None:
    kw = {"target": 1, "n_samples": 30, "feature_mask": GROUPS}
    sim_t = captum_lime.get_exp_kernel_similarity_function(mode, kernel_width=0.6)
    sim_o = our_lime.get_exp_kernel_similarity_function(mode, kernel_width=0.6)
    theirs = quiet(
        captum("Lime", MLP, captum_models.SkLearnLinearRegression(), sim_t, fixed_coalitions)
        .attribute, X, **kw,
    )  # fmt: skip
    got = ours.Lime(MLP, our_models.TorchLinearRegression(), sim_o, fixed_coalitions).attribute(
        X, **kw
    )
    close(got, theirs, atol=1e-4)


def test_lime_batch_scalar_output() -> None:
    total = lambda x: MLP(x)[:, 0].sum()  # noqa: E731
    kw = {"n_samples": 30, "feature_mask": GROUPS}
    theirs = quiet(
        captum("Lime", total, captum_models.SkLearnLinearRegression(), None, fixed_coalitions)
        .attribute, X, **kw,
    )  # fmt: skip
    got = ours.Lime(total, our_models.TorchLinearRegression(), None, fixed_coalitions).attribute(
        X, **kw
    )
    close(got, theirs, atol=1e-4)


def test_lime_base_input_space() -> None:
    def perturb(inp: Tensor, **kwargs: Any) -> Iterator[Tensor]:
        for row in COALITIONS:
            yield inp * row[:6].reshape(1, 6)

    def to_interp(sample: Tensor, inp: Tensor, **kwargs: Any) -> Tensor:
        return (sample != 0).float()

    def sim(a: Tensor, b: Tensor, z: Tensor, **kwargs: Any) -> float:
        return float(1 + z.sum()) * kwargs["scale"]

    f = lambda x: MLP(x)[:, 1]  # noqa: E731
    args = (sim, perturb, False, None, to_interp)
    theirs = quiet(
        captum_attr.LimeBase(f, captum_models.SkLearnLinearRegression(), *args).attribute,
        X[:1], n_samples=50, scale=0.5,
    )  # fmt: skip
    got = ours.LimeBase(f, our_models.SkLearnLinearRegression(), *args).attribute(
        X[:1], n_samples=50, scale=0.5
    )
    close(got, theirs)


def _enumerating(base: type) -> type:
    class Enumerating(base):  # type: ignore[misc, valid-type]
        def kernel_shap_perturb_generator(self, original_inp: Any, **kwargs: Any) -> Any:
            m = int(kwargs["num_interp_features"])
            yield torch.ones(1, m, dtype=torch.long)
            yield torch.zeros(1, m, dtype=torch.long)
            for k in range(1, 2**m - 1):
                yield torch.tensor([[(k >> j) & 1 for j in range(m)]])

    return Enumerating


@pytest.mark.parametrize(
    ("model", "inputs", "kw"),
    [
        (MLP, X, {"target": [1, 0, 2], "feature_mask": GROUPS}),
        (MULTI, XS, {"target": 0, "feature_mask": CROSS, "additional_forward_args": (SCALE,)}),
    ],
)
def test_kernel_shap_same_samples(model: Any, inputs: Any, kw: dict[str, Any]) -> None:
    # Captum's soft constraint (weight 1e6 on the end points) is close to our exact one
    theirs = quiet(
        _enumerating(captum_attr.KernelShap)(model).attribute, inputs, n_samples=16, **kw
    )
    got = _enumerating(ours.KernelShap)(model).attribute(inputs, n_samples=16, **kw)
    close(got, theirs, atol=1e-4)


def test_kernel_shap_linear_model() -> None:
    model = BasicLinearModel()
    x = torch.randn(2, 4, generator=G)
    torch.manual_seed(0)
    theirs = quiet(captum("KernelShap", model).attribute, x, target=1, n_samples=60)
    got = ours.KernelShap(model).attribute(x, target=1, n_samples=60)
    close(got, theirs, atol=1e-4)


def test_helpers() -> None:
    a, b = torch.randn(2, 5, generator=G), torch.randn(2, 5, generator=G)
    for mode in ("cosine", "euclidean"):
        theirs = captum_lime.get_exp_kernel_similarity_function(mode, 0.8)(a, b, None)
        assert our_lime.get_exp_kernel_similarity_function(mode, 0.8)(a, b, None) == pytest.approx(
            theirs, rel=1e-6
        )
    z = torch.tensor([[1, 0, 1, 1]])
    kw = {
        "feature_mask": (torch.tensor([[0, 1, 1]]), torch.tensor([[2, 3]])),
        "baselines": (0.5, -1.0),
    }
    xs = (torch.randn(1, 3, generator=G), torch.randn(1, 2, generator=G))
    close(
        our_lime.default_from_interp_rep_transform(z, xs, **kw),
        captum_lime.default_from_interp_rep_transform(z, xs, **kw),
    )
    masks = (torch.tensor([[3, 4, 4]]), torch.tensor([[6, 3]]))
    ours_m, ours_n = our_lime.construct_feature_mask(masks, xs)
    theirs_m, theirs_n = quiet(captum_lime.construct_feature_mask, masks, xs)
    assert ours_n == theirs_n
    close(ours_m, theirs_m)
    ks_o, ks_t = ours.KernelShap(MLP), captum("KernelShap", MLP)
    for sample in (torch.ones(1, 4), torch.tensor([[0, 1, 0, 0]])):
        assert (
            ks_o.kernel_shap_similarity_kernel(None, None, sample, num_interp_features=4).tolist()
            == ks_t.kernel_shap_similarity_kernel(
                None, None, sample, num_interp_features=4
            ).tolist()
        )
