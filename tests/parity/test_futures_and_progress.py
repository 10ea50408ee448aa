"""attribute_future and show_progress against Captum (a test oracle only)."""

from __future__ import annotations

import inspect
import re
import warnings
from typing import Any

import pytest
import torch
from torch import Tensor

from perspicio import attr as ours
from perspicio.testing import ReLUMLP

captum_attr = pytest.importorskip("captum.attr")

MLP = ReLUMLP()
X = torch.randn(3, 6, generator=torch.Generator().manual_seed(5))


LINEAR = torch.nn.Linear(6, 3)


def future_of(model: Any) -> Any:
    """A forward function answering with a future, as an RPC model would."""

    def remote(x: Tensor, *args: Any) -> torch.futures.Future[Tensor]:
        fut: torch.futures.Future[Tensor] = torch.futures.Future()
        fut.set_result(model(x))
        return fut

    return remote


def roll(x: Tensor, mask: Tensor) -> Tensor:
    """A deterministic permutation of the masked features across the batch."""
    return torch.where(mask.bool(), x.roll(1, 0), x)


remote = future_of(MLP)
PAIRS = torch.tensor([[0, 0, 1, 1, 2, 2]])
FUTURES: list[tuple[str, Any, dict[str, Any], dict[str, Any]]] = [
    ("FeatureAblation", MLP, {}, {"target": 1}),
    ("FeatureAblation", MLP, {}, {"target": 0, "perturbations_per_eval": 2, "feature_mask": PAIRS}),
    ("FeaturePermutation", MLP, {"perm_func": roll}, {"target": 2, "feature_mask": PAIRS}),
    # on an additive model every order of the features gives the same values
    ("ShapleyValueSampling", LINEAR, {}, {"target": 0, "n_samples": 3, "feature_mask": PAIRS}),
    ("ShapleyValues", MLP, {}, {"target": 1, "feature_mask": PAIRS}),
]


@pytest.mark.parametrize(("name", "model", "ctor", "kwargs"), FUTURES)
def test_attribute_future_matches_captum(
    name: str, model: Any, ctor: dict[str, Any], kwargs: dict[str, Any]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(captum_attr, name)(future_of(model), **ctor)
        expected = theirs.attribute_future(X, **kwargs).wait()
    mine = getattr(ours, name)(future_of(model), **ctor).attribute_future(X, **kwargs)
    assert isinstance(mine, torch._C.Future)
    torch.testing.assert_close(mine.wait(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "name", ["FeatureAblation", "FeaturePermutation", "ShapleyValueSampling", "ShapleyValues"]
)
def test_attribute_future_has_captums_parameters(name: str) -> None:
    theirs = inspect.signature(getattr(captum_attr, name).attribute_future).parameters
    mine = inspect.signature(getattr(ours, name).attribute_future).parameters
    assert list(mine) == list(theirs)
    for p in theirs:
        if p not in ("self", "kwargs"):
            assert mine[p].default == theirs[p].default, p


@pytest.mark.parametrize("name", ["Occlusion", "Lime", "KernelShap"])
def test_captum_lacks_these_futures_and_perspicio_gives_attributes_result(name: str) -> None:
    """Captum raises NotImplementedError here; perspicio computes what attribute would."""
    with pytest.raises(NotImplementedError):
        getattr(captum_attr, name)(MLP).attribute_future()
    kwargs: dict[str, Any] = {"target": 0}
    if name == "Occlusion":
        kwargs["sliding_window_shapes"] = (2,)
    else:
        kwargs["n_samples"] = 8
    torch.manual_seed(1)
    mine = getattr(ours, name)(remote).attribute_future(X, **kwargs).wait()
    torch.manual_seed(1)
    torch.testing.assert_close(mine, getattr(ours, name)(MLP).attribute(X, **kwargs))


def _last_line(err: str) -> str:
    return err.rstrip("\n").split("\r")[-1]


PROGRESS = [
    ("FeatureAblation", {}),
    ("Occlusion", {"sliding_window_shapes": (2,), "strides": 2}),
    ("FeaturePermutation", {}),
    ("ShapleyValueSampling", {"n_samples": 2}),
    ("Lime", {"n_samples": 6}),
    ("KernelShap", {"n_samples": 6}),
]


@pytest.mark.parametrize(("name", "kwargs"), PROGRESS)
def test_progress_prefix_matches_captum(
    name: str, kwargs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    x = X[:1] if name in ("Lime", "KernelShap") else X
    pattern = r"(.*?): +\d+%\|[^|]*\| (\d+)/(\d+) \[.*\]"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(captum_attr, name)(MLP).attribute(x, target=0, show_progress=True, **kwargs)
    theirs = re.fullmatch(pattern, _last_line(capsys.readouterr().err))
    getattr(ours, name)(MLP).attribute(x, target=0, show_progress=True, **kwargs)
    mine = re.fullmatch(pattern, _last_line(capsys.readouterr().err))
    assert theirs is not None and mine is not None
    assert mine.group(2) == mine.group(3)  # ours ends full
    assert mine.group(1) == theirs.group(1)  # "<Method name> attribution"
    # the counts agree except where Captum evaluates more (Shapley sampling re-evaluates the
    # full input at the end of every order) or miscounts (Occlusion counts input elements,
    # not windows, and ends below 100%)
    if name not in ("ShapleyValueSampling", "Occlusion"):
        assert mine.group(2, 3) == theirs.group(2, 3)
