"""The JSON API through an HTTP client: every route, filters, paging and refusals."""

from __future__ import annotations

import base64
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

PNG = "data:image/png;base64,"


def _png_ok(url: str) -> bool:
    return url.startswith(PNG) and base64.b64decode(url[len(PNG) :])[:8] == b"\x89PNG\r\n\x1a\n"


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    return body["error"]


def test_index_and_static_files(client: Any) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'src="static/app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name, kind in [("app.js", "javascript"), ("ui.js", "javascript"), ("style.css", "css")]:
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]


def test_config_lists_classes_models_and_typed_methods(client: Any) -> None:
    config = client.get("/api/config").json()
    assert config["classes"][3] == "digit 3"
    assert config["models"] == ["ConvNet #1", "ConvNet #2"]
    assert config["features"] == [{"name": "Photo", "type": "image"}]
    methods = {m["name"]: m for m in config["methods"]}
    assert {"Saliency", "IntegratedGradients"} <= set(methods)
    assert config["selected_method"] == "IntegratedGradients"
    n_steps = {a["name"]: a for a in methods["IntegratedGradients"]["args"]}["n_steps"]
    assert n_steps["type"] == "int" and n_steps["default"] == 50 and n_steps["min"] == 1


def test_openapi_schema_describes_requests(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/api/config", "/api/fetch", "/api/reattribute"} <= set(schema["paths"])
    fetch = schema["components"]["schemas"]["FetchRequest"]["properties"]
    assert fetch["count"]["maximum"] == 32
    assert fetch["instance_type"]["enum"] == ["all", "correct", "incorrect"]


def test_fetch_returns_examples_for_every_model(client: Any) -> None:
    body = client.post("/api/fetch", json={"method": "Saliency", "count": 3}).json()
    assert [e["index"] for e in body["examples"]] == [0, 1, 2]
    assert body["next_start"] == 3
    example = body["examples"][0]
    assert example["label"]["name"].startswith("digit ")
    assert [m["model"] for m in example["models"]] == [0, 1]
    view = example["models"][0]
    assert len(view["predictions"]) == 3
    scores = [p["score"] for p in view["predictions"]]
    assert scores == sorted(scores, reverse=True) and 0 <= scores[0] <= 1
    assert view["target"] == example["label"]  # use_label_for_attr
    (feature,) = view["features"]
    assert feature["type"] == "image" and feature["contribution"] == pytest.approx(1.0)
    assert _png_ok(feature["base"]["original"])
    assert _png_ok(feature["modified"]["heat_map"]) and _png_ok(feature["modified"]["blended"])
    legend = feature["modified"]["legend"]
    assert legend["min"] < 0 < legend["max"] and len(legend["colors"]) == 3


def test_fetch_pages_to_the_end(client: Any) -> None:
    seen, start = [], 0
    while start is not None:
        body = client.post("/api/fetch", json={"method": "Saliency", "count": 10, "start": start})
        page = body.json()
        seen += [e["index"] for e in page["examples"]]
        start = page["next_start"]
    assert seen == list(range(24))


@pytest.mark.parametrize("instance_type", ["correct", "incorrect"])
def test_fetch_filters_by_correctness(client: Any, instance_type: str) -> None:
    body = client.post(
        "/api/fetch", json={"method": "Saliency", "count": 32, "instance_type": instance_type}
    ).json()
    for example in body["examples"]:
        verdicts = [m["correct"] for m in example["models"]]
        assert any(verdicts) if instance_type == "correct" else not all(verdicts)


def test_fetch_filters_by_class(client: Any) -> None:
    wanted = {"digit 2", "digit 7"}
    body = client.post(
        "/api/fetch", json={"method": "Saliency", "count": 32, "classes": sorted(wanted)}
    ).json()
    assert body["examples"]
    for example in body["examples"]:
        tops = {m["predictions"][0]["name"] for m in example["models"]}
        assert example["label"]["name"] in wanted or tops & wanted


def test_reattribute_to_another_class_and_model(client: Any) -> None:
    body = {"example": 5, "model": 1, "target": 4, "method": "IntegratedGradients"}
    response = client.post("/api/reattribute", json={**body, "arguments": {"n_steps": 8}})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["example"] == 5
    assert data["view"]["model"] == 1 and data["view"]["target"] == {"index": 4, "name": "digit 4"}
    assert data["view"]["method"] == "IntegratedGradients"


def test_multimodal_contributions_text_and_general(multimodal_client: Any) -> None:
    response = multimodal_client.post("/api/fetch", json={"method": "IntegratedGradients"})
    assert response.status_code == 200, response.text
    view = response.json()["examples"][0]["models"][0]
    assert view["target"]["index"] == view["predictions"][0]["index"]  # use_label_for_attr=False
    image, table, text = view["features"]
    assert sum(f["contribution"] for f in view["features"]) == pytest.approx(1.0)
    assert all(0 <= f["contribution"] <= 1 for f in view["features"])
    assert table["base"]["categories"] == ["age", "<i>height</i>", "weight"]
    assert len(table["modified"]["values"]) == 3
    assert len(text["base"]) == 5 and all(isinstance(t, str) for t in text["base"])
    assert max(abs(v) for v in text["modified"]["normalized"]) == pytest.approx(1.0)
    assert _png_ok(image["modified"]["heat_map"])


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"method": "NoSuchMethod"}, "unknown method"),
        ({"method": "Saliency", "arguments": {"abs": "yes"}}, "'abs'"),
        ({"method": "IntegratedGradients", "arguments": {"n_steps": "many"}}, "n_steps"),
        ({"method": "IntegratedGradients", "arguments": {"n_steps": True}}, "n_steps"),
        ({"method": "IntegratedGradients", "arguments": {"n_steps": 0}}, "n_steps"),
        ({"method": "IntegratedGradients", "arguments": {"n_steps": 10**9}}, "n_steps"),
        ({"method": "IntegratedGradients", "arguments": {"method": "simpson"}}, "one of"),
        ({"method": "Saliency", "arguments": {"bogus": 1}}, "unknown argument"),
        ({"count": 0}, "count"),
        ({"count": 1000}, "count"),
        ({"start": -1}, "start"),
        ({"start": 500}, "past the end"),
        ({"start": 5_000_000}, "too far"),
        ({"instance_type": "sometimes"}, "instance_type"),
        ({"classes": ["digit 11"]}, "unknown class"),
        ({"colour": "red"}, "colour"),
        ({"classes": "digit 1"}, "classes"),
    ],
)
def test_bad_fetch_requests_are_4xx_with_a_message(client: Any, body: dict, needle: str) -> None:
    assert needle in _error(client.post("/api/fetch", json=body), 422)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"example": 24, "model": 0, "target": 1}, "past the end"),
        ({"example": 0, "model": 2, "target": 1}, "model 2"),
        ({"example": 0, "model": 0, "target": 10}, "target 10"),
        ({"example": -3, "model": 0, "target": 1}, "example"),
        ({"model": 0, "target": 1}, "example"),
        ({"example": "first", "model": 0, "target": 1}, "example"),
    ],
)
def test_bad_reattribute_requests_are_4xx(client: Any, body: dict, needle: str) -> None:
    assert needle in _error(client.post("/api/reattribute", json=body), 422)


def test_malformed_and_huge_bodies(client: Any) -> None:
    headers = {"content-type": "application/json"}
    assert "invalid" in _error(
        client.post("/api/fetch", content=b"{not json", headers=headers), 422
    )
    assert _error(client.post("/api/fetch", content=b"[1, 2]", headers=headers), 422)
    huge = {"classes": ["digit 1"] * 200_000}
    assert "bytes" in _error(client.post("/api/fetch", json=huge), 413)
    chunks = iter([b'{"classes": ['] + [b'"digit 1", '] * 10_000 + [b'"digit 1"]}'])
    assert "bytes" in _error(client.post("/api/fetch", content=chunks, headers=headers), 413)
    many = {"method": "Saliency", "arguments": {f"a{i}": i for i in range(100)}}
    assert _error(client.post("/api/fetch", json=many), 422)


def test_unknown_routes_and_verbs_are_json_4xx(client: Any) -> None:
    _error(client.get("/api/nothing"), 404)
    _error(client.get("/api/fetch"), 405)
    _error(client.get("/static/../server.py"), 404)


def test_method_that_cannot_apply_is_a_422(multimodal_client: Any) -> None:
    from perspicio.insights.methods import available_methods

    if "LayerGradCam" not in available_methods():
        pytest.skip("LayerGradCam is not in perspicio.attr yet")
    error = _error(multimodal_client.post("/api/fetch", json={"method": "LayerGradCam"}), 422)
    assert "image-like input" in error


def test_a_dataset_that_raises_is_reported_with_every_answer() -> None:
    import torch
    from fastapi.testclient import TestClient

    from perspicio.insights import AttributionVisualizer, Batch
    from perspicio.insights.features import GeneralFeature
    from perspicio.insights.server import create_app

    def batches() -> Any:
        yield Batch(torch.rand(4, 3), torch.tensor([0, 1, 0, 1]))
        raise RuntimeError("disk on fire")

    vis = AttributionVisualizer(
        torch.nn.Linear(3, 2), ["a", "b"], [GeneralFeature("x", "abc")], batches()
    )
    with TestClient(create_app(vis.engine)) as c:
        for _ in range(2):  # the error is not forgotten once the generator has died
            body = c.post("/api/fetch", json={"method": "Saliency", "count": 8}).json()
            assert [e["index"] for e in body["examples"]] == [0, 1, 2, 3]
            assert body["next_start"] is None
            assert "after 4 examples" in body["dataset_error"]
            assert "disk on fire" in body["dataset_error"]


def test_405_keeps_its_allow_header(client: Any) -> None:
    response = client.get("/api/fetch")
    _error(response, 405)
    assert response.headers["allow"] == "POST"


def test_no_match_is_said_only_after_the_whole_dataset(client: Any) -> None:
    import torch
    from fastapi.testclient import TestClient

    from perspicio.insights import AttributionVisualizer, Batch
    from perspicio.insights.features import GeneralFeature
    from perspicio.insights.server import create_app

    n = 3000  # more than one request used to scan (2,048)
    labels = torch.zeros(n, dtype=torch.long)
    labels[2900] = 2
    model = torch.nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))  # always predicts class 0
    data = [Batch(torch.rand(500, 3), labels[i : i + 500]) for i in range(0, n, 500)]
    vis = AttributionVisualizer(model, ["a", "b", "c"], [GeneralFeature("x", "pqr")], data)
    with TestClient(create_app(vis.engine)) as c:
        body = c.post("/api/fetch", json={"method": "Saliency", "classes": ["c"]}).json()
        assert [e["index"] for e in body["examples"]] == [2900]
        body = c.post("/api/fetch", json={"method": "Saliency", "classes": ["b"]}).json()
        assert body["examples"] == [] and body["next_start"] is None and body["scanned"] == n


def test_non_finite_numbers_and_custom_payloads_stay_valid_json() -> None:
    import numpy as np
    import torch
    from fastapi.testclient import TestClient

    from perspicio.insights import AttributionVisualizer, Batch
    from perspicio.insights.features import BaseFeature, FeatureOutput
    from perspicio.insights.server import create_app

    class Odd(BaseFeature):
        def visualization_type(self) -> str:
            return "odd"

        def visualize(self, attribution: Any, data: Any, contribution_frac: float) -> Any:
            payload = {"t": attribution, "a": np.array([np.inf, 1.0]), "o": object(), 1: (2.5,)}
            return FeatureOutput(self.name, payload, float("nan"), "odd", contribution_frac)

    vis = AttributionVisualizer(
        torch.nn.Linear(2, 3),
        ["a", "b", "c"],
        [Odd("odd", None, None, None)],
        [Batch(torch.rand(2, 2), torch.tensor([0, 1]))],
        score_func=lambda out: out * float("nan"),
    )
    with TestClient(create_app(vis.engine)) as c:
        response = c.post("/api/fetch", json={"method": "Saliency"})
    assert response.status_code == 200, response.text
    view = response.json()["examples"][0]["models"][0]
    assert {p["score"] for p in view["predictions"]} == {None}
    (feature,) = view["features"]
    assert feature["type"] == "odd" and feature["modified"] is None
    assert feature["base"]["a"] == [None, 1.0] and feature["base"]["1"] == [2.5]
    assert len(feature["base"]["t"][0]) == 2 and feature["base"]["o"].startswith("<object")
