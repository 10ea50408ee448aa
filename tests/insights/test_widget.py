"""The notebook widget: custom messages round-trip through the same handlers, no browser."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .conftest import image_visualizer

pytest.importorskip("anywidget")


def _roundtrip(widget: Any, content: dict[str, Any]) -> dict[str, Any]:
    """Deliver ``content`` as the frontend would and return the reply the widget sends."""
    sent: list[dict[str, Any]] = []
    responder = widget._perspicio_responder
    responder.send = sent.append
    # the same path as a comm message from the browser: ipywidgets -> on_msg callbacks
    widget._handle_custom_msg(content, [])
    future = responder.last_future
    future.result(timeout=60)
    assert len(sent) == 1
    return sent[0]


@pytest.fixture
def widget() -> Any:
    return image_visualizer(n_models=2, n=16).widget()


def test_widget_module_is_the_shared_ui_plus_glue(widget: Any) -> None:
    esm = widget._esm
    assert "export function mount" in esm and "export default" in esm
    assert "msg:custom" in esm
    assert not re.search(r"^\s*import\s", esm, re.MULTILINE)  # one self-contained module
    assert ".psp-root" in widget._css


def test_widget_fetch_round_trip(widget: Any) -> None:
    body = {"method": "Saliency", "count": 2, "instance_type": "all"}
    reply = _roundtrip(widget, {"id": "v-1", "route": "fetch", "body": body})
    assert reply["id"] == "v-1" and reply["ok"] and reply["status"] == 200
    examples = reply["body"]["examples"]
    assert [e["index"] for e in examples] == [0, 1]
    assert len(examples[0]["models"]) == 2
    image = examples[0]["models"][0]["features"][0]
    assert image["modified"]["blended"].startswith("data:image/png;base64,")


def test_widget_config_and_reattribute(widget: Any) -> None:
    config = _roundtrip(widget, {"id": 1, "route": "config", "body": None})
    assert config["ok"] and "Saliency" in [m["name"] for m in config["body"]["methods"]]
    body = {"example": 3, "model": 1, "target": 2, "method": "Saliency"}
    reply = _roundtrip(widget, {"id": 2, "route": "reattribute", "body": body})
    assert reply["ok"] and reply["body"]["view"]["target"]["index"] == 2


@pytest.mark.parametrize(
    ("content", "status", "needle"),
    [
        ({"id": 3, "route": "fetch", "body": {"method": "Nope"}}, 422, "unknown method"),
        ({"id": 4, "route": "fetch", "body": {"count": "many"}}, 422, "count"),
        ({"id": 5, "route": "reattribute", "body": {"example": 99, "target": 0}}, 422, "past"),
        ({"id": 6, "route": "delete", "body": {}}, 404, "unknown route"),
        ({"id": 7, "route": "fetch", "body": {"classes": ["x" * 100] * 1000}}, 413, "bytes"),
    ],
)
def test_widget_errors_are_replies_not_exceptions(
    widget: Any, content: dict, status: int, needle: str
) -> None:
    reply = _roundtrip(widget, content)
    assert reply["ok"] is False and reply["status"] == status
    assert needle in reply["error"]["error"]


def test_foreign_messages_are_ignored(widget: Any) -> None:
    responder = widget._perspicio_responder
    assert responder(widget, {"something": "else"}) is None
    assert responder(widget, "text") is None


def test_widget_jobs_start_report_and_cancel(widget: Any) -> None:
    import time

    body = {"method": "Saliency", "count": 2}
    started = _roundtrip(widget, {"id": 8, "route": "job_fetch", "body": body})
    assert started["ok"] and started["body"]["job"]
    job = started["body"]["job"]
    for _ in range(1000):
        status = _roundtrip(widget, {"id": 9, "route": "job_status", "body": {"job": job}})
        if status["body"]["state"] != "running":
            break
        time.sleep(0.01)
    assert status["body"]["state"] == "done"
    assert [e["index"] for e in status["body"]["result"]["examples"]] == [0, 1]
    cancelled = _roundtrip(widget, {"id": 10, "route": "job_cancel", "body": {"job": job}})
    assert cancelled["body"]["state"] == "done"  # a finished job stays finished
    for content, code in [
        ({"id": 11, "route": "job_status", "body": {"job": "nope"}}, 404),
        ({"id": 12, "route": "job_status", "body": {"job": 5}}, 422),
        ({"id": 13, "route": "job_cancel", "body": None}, 422),
    ]:
        reply = _roundtrip(widget, content)
        assert reply["ok"] is False and reply["status"] == code


def test_raw_outputs_are_flagged_for_the_bars() -> None:
    import torch

    from perspicio.insights import AttributionVisualizer, Batch
    from perspicio.insights.features import GeneralFeature

    data = [Batch(torch.rand(2, 3), torch.tensor([0, 1]))]
    vis = AttributionVisualizer(
        torch.nn.Linear(3, 2), ["a", "b"], [GeneralFeature("x", "pqr")], data
    )
    assert vis.engine.config().scores == "raw"
    assert image_visualizer(1, 4).engine.config().scores == "scores"
