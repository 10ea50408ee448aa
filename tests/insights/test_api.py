"""The Python API of ``AttributionVisualizer``: config, visualize, render."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import image_visualizer

pytest.importorskip("pydantic")


def test_get_insights_config_lists_methods_and_their_arguments() -> None:
    config = image_visualizer(n_models=1, n=8).get_insights_config()
    assert config["classes"][0] == "digit 0"
    assert {"Saliency", "IntegratedGradients"} <= set(config["methods"])
    n_steps = config["method_arguments"]["IntegratedGradients"]["n_steps"]
    assert n_steps["type"] == "int" and n_steps["default"] == 50
    assert config["selected_method"] == "IntegratedGradients"


def test_visualize_returns_plain_dicts() -> None:
    (example,) = image_visualizer(n_models=1, n=8).visualize(method="Saliency", count=1)
    assert example["index"] == 0 and example["models"][0]["method"] == "Saliency"


def test_render_displays_the_widget(monkeypatch: pytest.MonkeyPatch) -> None:
    ipython_display = pytest.importorskip("IPython.display")
    pytest.importorskip("anywidget")

    shown: list[Any] = []
    monkeypatch.setattr(ipython_display, "display", shown.append)
    assert image_visualizer(n_models=1, n=8).render() is None
    (widget,) = shown
    assert type(widget).__name__ == "InsightsWidget"
    assert widget._perspicio_responder.debug is True
