"""Captum compatibility cases where our behaviour once differed (issue 13); Captum is the oracle."""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import pytest
import torch
from torch import nn

from perspicio import attr as ours
from perspicio._core.validate import ArgumentError

captum_attr = pytest.importorskip("captum.attr")


def close(a: Any, b: Any, atol: float = 1e-5) -> None:
    if isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            close(x, y, atol)
        return
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-4)


def captum(name: str, *ctor: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(captum_attr, name)(*ctor).attribute(**kwargs)


class Attention(nn.Module):
    """Returns ``(h, p)`` with the hidden state ``h`` computed from the probabilities ``p``."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.softmax(self.q(x), -1)
        return p * x, p


class AttentionNet(nn.Module):
    def __init__(self, use_p: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.att = Attention()
        self.out = nn.Linear(4, 3)
        self.use_p = use_p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, p = self.att(x)
        y = self.out(h)
        return y + p.sum(-1, keepdim=True) ** 2 if self.use_p else y


X = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
TUPLE_LAYER = [
    ("LayerGradientXActivation", {}),
    ("LayerConductance", {"n_steps": 8}),
    ("LayerDeepLift", {}),
    ("LayerIntegratedGradients", {"n_steps": 8}),
]


@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("use_p", [False, True])
@pytest.mark.parametrize(("name", "kw"), TUPLE_LAYER)
def test_tuple_layer_element_used_inside_the_layer(
    name: str, kw: dict[str, Any], use_p: bool, frozen: bool
) -> None:
    model = AttentionNet(use_p)
    if name == "LayerIntegratedGradients" and not use_p:
        # both interpolate the layer's outputs: an unused element gets no gradient (Captum
        # raises on the unused tensor, we give zeros)
        got = ours.LayerIntegratedGradients(model, model.att).attribute(X, target=1, **kw)
        assert torch.equal(got[1], torch.zeros_like(got[1]))
        return
    theirs = captum(name, model, model.att, inputs=X, target=1, **kw)
    model.requires_grad_(not frozen)  # Captum needs trainable weights here; we do not
    got = getattr(ours, name)(model, model.att).attribute(X, target=1, **kw)
    assert got[1].abs().sum() > 0
    close(got, theirs)
    assert all(p.requires_grad is not frozen and p.grad is None for p in model.parameters())


def test_tuple_layer_gradient_shap_gives_the_inner_element_its_gradient() -> None:
    # Captum draws its samples in another order, so only the effect is checked here
    model = AttentionNet(use_p=False)
    dist = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    got = ours.LayerGradientShap(model, model.att).attribute(X, dist, target=1)
    assert got[1].abs().sum() > 0


# --- LimeBase with a transform giving inputs of other lengths (text) -------------------------

_TEXT_IDS = torch.tensor([[3, 5, 7, 9, 11]])
_TEXT_Z = torch.bernoulli(torch.full((30, 5), 0.5), generator=torch.Generator().manual_seed(0))
_TEXT_Z[:, 0] = 1  # never an empty text


def _text_model() -> Any:
    torch.manual_seed(0)
    emb, lin = nn.EmbeddingBag(20, 3), nn.Linear(3, 2)
    return lambda ids: lin(emb(ids))[:, 0]


def _drop_words(z: torch.Tensor, ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    return ids[:, z[0].bool()]  # the words switched off are removed: a shorter text


def _coalitions(ids: torch.Tensor, **kwargs: Any) -> Any:
    for z in _TEXT_Z:
        yield z.long().unsqueeze(0)


@pytest.mark.parametrize("per_eval", [None, 1, 4])
def test_lime_base_with_texts_of_other_lengths(per_eval: int | None) -> None:
    from captum._utils.models.linear_model import SkLearnLinearRegression

    from perspicio import models as our_models

    f = _text_model()
    args = (lambda *a, **k: 1.0, _coalitions, True, _drop_words, None)
    theirs = captum_attr.LimeBase(f, SkLearnLinearRegression(), *args).attribute(
        _TEXT_IDS, n_samples=30
    )  # Captum itself fails here with perturbations_per_eval > 1
    kw = {} if per_eval is None else {"perturbations_per_eval": per_eval}
    got = ours.LimeBase(f, our_models.SkLearnLinearRegression(), *args).attribute(
        _TEXT_IDS, n_samples=30, **kw
    )
    close(got, theirs)


# --- forward functions returning one scalar for the whole batch ---------------------------

SCALAR_OUTPUTS = {
    "float": lambda x: float(x.sum()),
    "int": lambda x: int(x.sum()),
    "0-d": lambda x: x.sum(),
    "0-d int": lambda x: x.sum().long(),
    "rows int": lambda x: x.sum(1).long(),
}
SCALAR_METHODS = [
    ("FeatureAblation", {}),
    ("FeaturePermutation", {}),
    ("Occlusion", {"sliding_window_shapes": (2,)}),
    ("ShapleyValues", {}),
    ("ShapleyValueSampling", {"n_samples": 2}),
    ("KernelShap", {"n_samples": 20}),
]


@pytest.mark.parametrize("out", list(SCALAR_OUTPUTS))
@pytest.mark.parametrize(("name", "kw"), SCALAR_METHODS)
def test_scalar_output_dtype_and_values(name: str, kw: dict[str, Any], out: str) -> None:
    f = SCALAR_OUTPUTS[out]
    x = torch.arange(12.0).reshape(3, 4)
    theirs = captum(name, f, inputs=x, **kw)
    got = getattr(ours, name)(f).attribute(x, **kw)
    if out == "float" and name not in ("FeatureAblation", "FeaturePermutation"):
        # a Python float is a float64 value: we keep that precision (README, differences)
        assert got.dtype == torch.float64 and theirs.dtype == torch.float32
    else:
        assert got.dtype == theirs.dtype  # int64 from ablation of an integer output
    assert got.shape == theirs.shape
    if name in ("FeatureAblation", "Occlusion", "ShapleyValues", "KernelShap"):
        close(got.double(), theirs.double(), atol=1e-3)  # a sum: every method is exact


# --- boolean and integer inputs, sparse inputs ---------------------------------------------

BOOLS = torch.tensor([[True, False, True, True], [False, True, True, False]])
INTS = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
DENSE = torch.arange(8.0).reshape(2, 4)
BASE_T = torch.full((1, 4), 0.5)
INPUT_METHODS = [
    ("FeatureAblation", {}),
    ("Occlusion", {"sliding_window_shapes": (1,)}),
    ("ShapleyValueSampling", {"n_samples": 2}),
    ("ShapleyValues", {}),
]


def _count(x: torch.Tensor) -> torch.Tensor:
    return (x.float() * torch.arange(1.0, 5.0)).sum(1)


def _with_indices(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return x.sum(1) + idx.float().sum()  # idx: a list of indices, not one row per example


@pytest.mark.parametrize("baselines", [False, torch.zeros(1, 4, dtype=torch.bool), None])
@pytest.mark.parametrize(("name", "kw"), INPUT_METHODS)
def test_boolean_inputs_and_baselines(name: str, kw: dict[str, Any], baselines: Any) -> None:
    kw = dict(kw, baselines=baselines)
    theirs = captum(name, _count, inputs=BOOLS, **kw)
    close(getattr(ours, name)(_count).attribute(BOOLS, **kw), theirs)


@pytest.mark.parametrize("baselines", [0.5, torch.full((1, 4), 0.5), 2])
@pytest.mark.parametrize(("name", "kw"), INPUT_METHODS)
def test_integer_inputs_with_float_baselines(name: str, kw: dict[str, Any], baselines: Any) -> None:
    kw = dict(kw, baselines=baselines)
    got = getattr(ours, name)(_count).attribute(INTS, **kw)
    if name.startswith("Shapley") and isinstance(baselines, float):
        # Captum's Shapley methods round a float *number* to the inputs' dtype (but not a
        # float tensor); we treat both alike: the perturbed inputs become floats
        close(got, getattr(ours, name)(_count).attribute(INTS, **dict(kw, baselines=BASE_T)))
        return
    close(got, captum(name, _count, inputs=INTS, **kw))


@pytest.mark.parametrize("idx", [torch.tensor([0, 3, 5]), torch.zeros(0, dtype=torch.long)])
@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("FeatureAblation", {"baselines": (0.0, 0)}),
        ("ShapleyValueSampling", {"baselines": (0.0, 0), "n_samples": 2}),
        ("ShapleyValues", {"baselines": (0.0, 0)}),
        ("FeaturePermutation", {}),
    ],
)
def test_sparse_inputs_are_passed_through(name: str, kw: dict[str, Any], idx: Any) -> None:
    inputs = (DENSE, idx)
    torch.manual_seed(0)
    got = getattr(ours, name)(_with_indices).attribute(inputs, **kw)
    if name == "ShapleyValues" and not idx.numel():  # Captum fails on the empty list
        close(got, (DENSE, torch.zeros(2)))
        return
    torch.manual_seed(0)
    close(got, captum(name, _with_indices, inputs=inputs, **kw))


def test_sparse_input_needs_a_shared_mask() -> None:
    mask = (torch.tensor([[0, 0, 1, 1]]), torch.tensor([2, 2, 2]))
    with pytest.raises(ArgumentError) as e:
        ours.FeatureAblation(_with_indices).attribute(
            (DENSE, torch.tensor([0, 3, 5])), feature_mask=mask
        )
    assert "feature_mask[1]" in str(e.value) and "sparse" in str(e.value)


def test_lime_with_texts_of_other_lengths_per_example() -> None:
    from perspicio import models as our_models

    f = _text_model()
    texts = torch.tensor([[3, 5, 7, 9, 11], [2, 4, 6, 8, 10]])
    lime = ours.Lime(f, our_models.SkLearnLinearRegression(), lambda *a, **k: 1.0)
    coalitions = itertools.cycle(torch.tensor([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]))
    lime.perturb_func = lambda ids, **kw: next(coalitions).unsqueeze(0)  # the same for both
    lime.from_interp_rep_transform = _drop_words  # lengths 3, 5, 1: one sample per pass
    got = lime.attribute(texts, n_samples=3)
    alone = torch.cat([lime.attribute(texts[i : i + 1], n_samples=3) for i in range(2)])
    close(got, alone)  # the same samples (the cycle restarts every 3), one example at a time
    # a transform giving the two examples texts of different lengths: a clear error
    lime.from_interp_rep_transform = lambda z, ids, **kw: ids[:, : int(ids[0, 0]) % 4 + 1]
    with pytest.raises(ArgumentError, match="different shapes.*one example at a time"):
        lime.attribute(texts, n_samples=3)
