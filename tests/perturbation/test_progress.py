from __future__ import annotations

import builtins
import sys
from typing import Any

import pytest

from perspicio.perturbation.progress import progress


def test_disabled_progress_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with progress("Feature Ablation", 3, enabled=False) as bar:
        bar.update(3)
    assert capsys.readouterr() == ("", "")


def test_tqdm_bar_shows_the_description(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    with progress("Feature Ablation: 4 perturbations", 4) as bar:
        bar.update(4)
    err = capsys.readouterr().err
    assert "Feature Ablation: 4 perturbations" in err and "4/4" in err


def test_without_tqdm_a_plain_line_goes_to_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_tqdm(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    monkeypatch.delitem(sys.modules, "tqdm.auto", raising=False)
    with pytest.raises(RuntimeError), progress("Shapley Values", 5) as bar:
        bar.update(5)
        raise RuntimeError("the bar still closes")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Shapley Values: 5/5 perturbations" in captured.err and captured.err.endswith("\n")
