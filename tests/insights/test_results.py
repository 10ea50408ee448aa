"""Result mode: a saved Explanation through the explorer's JSON API (token, pages, refusals)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from perspicio._core.validate import ArgumentError
from perspicio.result import Explanation

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("safetensors")

TOKEN = "s3cret-token"
PNG = "data:image/png;base64,"
N = 9


def tabular(n_features: int = 3, seed: int = 0) -> Explanation:
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(N, n_features, generator=gen)
    values[4] = values[2]  # a tie in total |attribution|: dataset order must break it
    return Explanation(
        values=(values,),
        data=(torch.rand(N, n_features, generator=gen),),
        output=torch.tensor([0.5, 2.0, -1.0, 2.0, 0.1, 3.0, -2.0, 0.0, 1.5]),
        base_value=torch.full((N,), 0.25),
        feature_names=tuple(f"f{i}" for i in range(n_features)),
        method="IntegratedGradients",
        arguments={"n_steps": 16, "method": "gausslegendre"},
        target=torch.tensor([2, 10, 0, 2, 1, 10, 0, 2, 1]),
    )


def multimodal() -> Explanation:
    gen = torch.Generator().manual_seed(1)
    image, ids = torch.randn(3, 1, 8, 8, generator=gen), torch.randn(3, 5, generator=gen)
    return Explanation(
        values=(image, ids),
        data=(torch.rand(3, 1, 8, 8, generator=gen), torch.tensor([[1, 2, 3, 4, 5]] * 3)),
        method="Saliency",
        target=torch.tensor([1, 0, 1]),
    )


def client_for(result: Explanation | str | Path) -> Any:
    from fastapi.testclient import TestClient

    from perspicio.insights.results import ResultEngine
    from perspicio.insights.server import create_app

    app = create_app(ResultEngine(result), token=TOKEN, allowed_hosts=frozenset({"testserver"}))
    return TestClient(app, headers={"X-Perspicio-Token": TOKEN})


@pytest.fixture
def client() -> Iterator[Any]:
    with client_for(tabular()) as c:
        yield c


def _rows(client: Any, **body: Any) -> list[int]:
    """Every example index of a filtered order, by following the pages."""
    seen, start = [], 0
    while start is not None:
        page = client.post("/api/result/page", json={**body, "start": start, "count": 2}).json()
        seen += [e["index"] for e in page["examples"]]
        assert page["total"] >= len(seen)
        start = page["next_start"]
    return seen


def test_config_describes_the_result_and_its_global_importance(client: Any) -> None:
    config = client.get("/api/config").json()
    assert config["mode"] == "result" and config["methods"] == []
    info = config["result"]
    assert info["method"] == "IntegratedGradients"
    assert info["arguments"] == {"n_steps": 16, "method": "gausslegendre"}
    assert info["examples"] == N and info["has_output"] and info["has_base_value"]
    assert info["targets"] == ["0", "1", "2", "10"]  # numeric order
    values = tabular().values[0].numpy()
    brute = [sum(abs(values[r, j]) for r in range(N)) / N for j in range(3)]
    expected = sorted(range(3), key=lambda j: -brute[j])
    assert [i["name"] for i in info["importance"]] == [f"f{j}" for j in expected]
    assert [i["value"] for i in info["importance"]] == pytest.approx([brute[j] for j in expected])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, list(range(N))),
        ({"targets": ["2"]}, [0, 3, 7]),
        ({"targets": ["10", "0"]}, [1, 2, 5, 6]),
        ({"order": "target"}, [2, 6, 4, 8, 0, 3, 7, 1, 5]),
        ({"order": "output"}, [5, 1, 3, 8, 0, 4, 7, 2, 6]),
        ({"order": "output", "targets": ["2"]}, [3, 0, 7]),
    ],
)
def test_pages_filter_and_order_every_example_once(
    client: Any, body: dict[str, Any], expected: list[int]
) -> None:
    assert _rows(client, **body) == expected


def test_order_by_total_attribution_is_stable(client: Any) -> None:
    totals = tabular().values[0].abs().sum(1).tolist()
    expected = sorted(range(N), key=lambda i: -totals[i])  # Python's sort is stable
    assert _rows(client, order="attribution") == expected
    assert expected.index(2) + 1 == expected.index(4)  # the tie kept dataset order


def test_a_card_holds_target_scores_and_feature_bars(client: Any) -> None:
    page = client.post("/api/result/page", json={"start": 3, "count": 2}).json()
    assert page["prev_start"] == 1 and page["next_start"] == 5 and page["total"] == N
    card = page["examples"][0]
    result = tabular()
    assert (card["index"], card["target"]) == (3, "2")
    assert card["output"] == 2.0 and card["base_value"] == 0.25
    (feature,) = card["features"]
    assert feature["type"] == "general" and feature["contribution"] == 1.0
    assert feature["base"]["categories"] == ["f0", "f1", "f2"]
    assert feature["base"]["values"] == pytest.approx(result.data[0][3].tolist())
    assert feature["modified"]["values"] == pytest.approx(result.values[0][3].tolist())


def test_wide_tabular_inputs_draw_their_largest_bars_only() -> None:
    from perspicio.insights.results import MAX_BARS

    result = tabular(n_features=MAX_BARS + 8)
    with client_for(result) as c:
        card = c.post("/api/result/page", json={"count": 1}).json()["examples"][0]
    row = result.values[0][0].numpy()
    keep = sorted(np.argsort(-np.abs(row))[:MAX_BARS])
    bars = card["features"][0]
    assert bars["base"]["categories"] == [f"f{j}" for j in keep]
    assert bars["modified"]["values"] == pytest.approx(row[keep].tolist())


def test_images_and_token_ids_reuse_the_explorers_views() -> None:
    result = multimodal()
    with client_for(result) as c:
        config = c.get("/api/config").json()
        card = c.post("/api/result/page", json={"start": 1, "count": 1}).json()["examples"][0]
    assert [f["type"] for f in config["features"]] == ["image", "text"]
    assert config["result"]["importance"] == []  # only for tabular results
    assert card["output"] is None and card["base_value"] is None
    image, text = card["features"]
    for key in ("original",):
        assert base64.b64decode(image["base"][key][len(PNG) :])[:4] == b"\x89PNG"
    assert image["modified"]["heat_map"].startswith(PNG)
    assert text["base"] == ["1", "2", "3", "4", "5"]
    assert text["modified"]["values"] == pytest.approx(result.values[1][1].tolist())
    totals = [float(v[1].abs().sum()) for v in result.values]
    assert image["contribution"] == pytest.approx(totals[0] / sum(totals))


def test_the_token_and_host_checks_hold() -> None:
    from fastapi.testclient import TestClient

    from perspicio.insights.results import ResultEngine
    from perspicio.insights.server import create_app

    app = create_app(ResultEngine(tabular()), token=TOKEN, allowed_hosts=frozenset({"testserver"}))
    with TestClient(app) as bare:
        assert bare.get("/api/config").status_code == 403
        assert bare.post("/api/result/page", json={}).status_code == 403
        assert bare.get("/static/result.js").status_code == 200
        evil = {"Host": "evil.example", "X-Perspicio-Token": TOKEN}
        assert bare.get("/api/config", headers=evil).status_code == 403
        assert bare.get(f"/api/config?token={TOKEN}").status_code == 200


@pytest.mark.parametrize("route", ["/api/fetch", "/api/reattribute", "/api/jobs/fetch"])
def test_routes_that_would_run_a_model_are_refused(client: Any, route: str) -> None:
    response = client.post(route, json={"example": 0, "target": 1})
    assert response.status_code == 409
    assert "saved result" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"targets": ["7"]}, "unknown target"),
        ({"start": N}, "past the 9 matching"),
        ({"order": "size"}, "order"),
        ({"count": 0}, "count"),
        ({"model": 1}, "model"),  # extra fields are refused
    ],
)
def test_bad_page_requests_are_422(client: Any, body: dict[str, Any], words: str) -> None:
    response = client.post("/api/result/page", json=body)
    assert response.status_code == 422
    assert words in response.json()["error"]


def test_order_by_output_needs_outputs() -> None:
    with client_for(multimodal()) as c:
        response = c.post("/api/result/page", json={"order": "output"})
    assert response.status_code == 422 and "no saved outputs" in response.json()["error"]


def test_a_saved_file_opens_as_it_was_saved(tmp_path: Path) -> None:
    path = tmp_path / "r.safetensors"
    tabular().save(path)
    with client_for(str(path)) as c, client_for(tabular()) as direct:
        body = {"order": "target", "count": 4}
        saved = c.post("/api/result/page", json=body).json()
        assert saved == direct.post("/api/result/page", json=body).json()


def test_bad_files_are_one_line_argument_errors(tmp_path: Path) -> None:
    from perspicio.insights.results import load_result

    with pytest.raises(ArgumentError, match="does not exist"):
        load_result(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01not a safetensors file at all")
    with pytest.raises(ArgumentError, match="is not a perspicio explanation file") as info:
        load_result(junk)
    assert "\n" not in str(info.value)
    from safetensors.torch import save_file

    other = tmp_path / "weights.safetensors"
    save_file({"w": torch.ones(2)}, str(other))
    with pytest.raises(ArgumentError, match="is not a perspicio explanation file"):
        load_result(other)


def test_the_widget_routes_answer_like_the_server() -> None:
    from perspicio.insights.results import ResultEngine
    from perspicio.insights.widget import dispatch

    engine = ResultEngine(tabular())
    status, body = dispatch(engine, "result_page", {"targets": ["1"]})
    assert status == 200 and [e["index"] for e in body["examples"]] == [4, 8]
    assert dispatch(engine, "config", None)[1]["mode"] == "result"
    assert dispatch(engine, "job_fetch", {})[0] == 409
    assert dispatch(engine, "nope", {})[0] == 404
    assert dispatch(engine, "result_page", {"count": 99})[0] == 422


def test_an_empty_or_wrong_result_is_refused() -> None:
    from perspicio.insights.results import ResultEngine

    with pytest.raises(ArgumentError, match="no examples"):
        ResultEngine(Explanation(values=(torch.zeros(0, 3),)))
    with pytest.raises(TypeError, match="Explanation or a file path"):
        ResultEngine(torch.zeros(3))  # type: ignore[arg-type]


def test_sequences_sum_over_their_last_dimension_and_images_need_no_data() -> None:
    gen = torch.Generator().manual_seed(2)
    seq, image = torch.randn(2, 4, 3, generator=gen), torch.randn(2, 3, 6, 6, generator=gen)
    with client_for(Explanation(values=(seq, image), target=None)) as c:
        config = c.get("/api/config").json()
        card = c.post("/api/result/page", json={"start": 1, "count": 1}).json()["examples"][0]
    assert config["result"]["targets"] == [] and card["target"] is None
    text, picture = card["features"]
    assert text["type"] == "text" and text["base"] == ["#0", "#1", "#2", "#3"]
    assert text["modified"]["values"] == pytest.approx(seq[1].sum(1).tolist(), abs=1e-6)
    assert picture["type"] == "image" and picture["modified"]["heat_map"].startswith(PNG)
