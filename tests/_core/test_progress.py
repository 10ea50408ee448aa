"""``show_progress=True`` prints Captum's progress output: with tqdm and without it."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
import torch

from perspicio._core.progress import progress
from perspicio.attr import (
    FeatureAblation,
    FeaturePermutation,
    KernelShap,
    Lime,
    Occlusion,
    ShapleyValueSampling,
)
from perspicio.testing import ReLUMLP

# (method, attribute kwargs, the count: Captum's, one per forward pass at its default of one
# perturbation per pass, except where fewer passes are needed)
METHODS: list[tuple[type, dict[str, Any], int]] = [
    (FeatureAblation, {}, 6 + 1),  # one pass per feature, and the unperturbed pass
    (Occlusion, {"sliding_window_shapes": (2,), "strides": 2}, 3 + 1),
    (ShapleyValueSampling, {"n_samples": 2}, 2 * 5 + 2),  # Captum: 2 * 6 + 1
    (FeaturePermutation, {}, 6 + 1),
    (Lime, {"n_samples": 5}, 5),  # Lime counts its samples only
    (KernelShap, {"n_samples": 5}, 5),
]


@pytest.fixture
def no_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import tqdm`` fails, as when it is not installed."""
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


def _run(method: type, kwargs: dict[str, Any]) -> None:
    x = torch.randn(2 if method is not FeaturePermutation else 3, 6)
    method(ReLUMLP()).attribute(x, target=0, show_progress=True, **kwargs)


@pytest.mark.parametrize(("method", "kwargs", "total"), METHODS)
def test_tqdm_bar_with_captums_prefix(
    method: type, kwargs: dict[str, Any], total: int, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    _run(method, kwargs)
    captured = capsys.readouterr()
    last = captured.err.rstrip("\n").split("\r")[-1]
    name = method.get_name()  # type: ignore[attr-defined]
    assert captured.out == ""
    assert re.fullmatch(rf"{name} attribution: 100%\|█+\| {total}/{total} \[.*it/s\]", last)


@pytest.mark.parametrize(("method", "kwargs", "total"), METHODS)
def test_plain_text_without_tqdm(
    method: type,
    kwargs: dict[str, Any],
    total: int,
    no_tqdm: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _run(method, kwargs)
    captured = capsys.readouterr()
    name = method.get_name()  # type: ignore[attr-defined]
    assert captured.out == ""
    assert captured.err.startswith(f"\r{name} attribution: 0% 0/{total}")
    assert captured.err.endswith(f"\r{name} attribution: 100% {total}/{total}\n")


def test_disabled_progress_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with progress("Feature Ablation attribution", 3, enabled=False) as bar:
        bar.update(3)
    assert capsys.readouterr() == ("", "")


def test_plain_bar_closes_after_an_error(no_tqdm: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError), progress("Shapley Values attribution", 4) as bar:
        bar.update(2)
        raise RuntimeError("the bar still closes")
    assert capsys.readouterr().err.endswith("\rShapley Values attribution: 50% 2/4\n")


def test_plain_bar_of_unknown_length_draws_dots(
    no_tqdm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with progress("Work", None) as bar:
        bar.update(3)
    assert capsys.readouterr().err.endswith("\rWork: ...\n")
