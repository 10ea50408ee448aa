"""The session token, the Host check, fuzzing the API and many concurrent requests."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from .conftest import image_visualizer

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

TOKEN = "s3cret-token"
HOSTS = frozenset({"testserver", "localhost", "127.0.0.1"})


@pytest.fixture
def guarded() -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from perspicio.insights.server import create_app

    app = create_app(image_visualizer(1, 8).engine, token=TOKEN, allowed_hosts=HOSTS)
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("path", ["/", "/api/config", "/openapi.json", "/api/jobs/x"])
def test_requests_without_the_token_are_refused(guarded: Any, path: str) -> None:
    response = guarded.get(path)
    assert response.status_code == 403 and "token" in response.json()["error"]
    assert guarded.get(path, headers={"X-Perspicio-Token": "wrong"}).status_code == 403
    assert guarded.get(path, params={"token": TOKEN[:-1]}).status_code == 403


def test_the_token_in_the_url_sets_a_cookie_that_then_suffices(guarded: Any) -> None:
    assert guarded.get("/static/ui.js").status_code == 200  # the package's own files are public
    page = guarded.get("/", params={"token": TOKEN})
    assert page.status_code == 200
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"perspicio-insights={TOKEN}") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert guarded.get("/api/config").status_code == 200  # the client kept the cookie
    guarded.cookies.clear()
    assert guarded.get("/api/config").status_code == 403
    assert guarded.get("/api/config", headers={"X-Perspicio-Token": TOKEN}).status_code == 200


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("localhost:8000", True),
        ("127.0.0.1:8000", True),
        ("evil.example", False),
        ("evil.example:8000", False),
        ("127.0.0.1.evil.example", False),
        ("", False),
    ],
)
def test_host_header_check(guarded: Any, host: str, ok: bool) -> None:
    headers = {"X-Perspicio-Token": TOKEN, "host": host}
    response = guarded.get("/api/config", headers=headers)
    assert response.status_code == (200 if ok else 403)
    if not ok:
        assert "DNS rebinding" in response.json()["error"]


@pytest.mark.parametrize(
    ("header", "name"),
    [("[::1]:80", "[::1]"), ("LocalHost", "localhost"), ("a.b:1", "a.b"), ("::1", "::1")],
)
def test_host_name(header: str, name: str) -> None:
    from perspicio.insights.guard import host_name

    assert host_name(header) == name


def test_a_served_app_checks_token_and_host_and_ip_hosts_when_bound_to_all() -> None:
    pytest.importorskip("uvicorn")
    vis = image_visualizer(1, 8)
    url = vis.serve()
    try:
        base = url.split("?")[0]
        with httpx.Client(trust_env=False) as http:
            assert http.get(base + "api/config").status_code == 403
            assert http.get(url).status_code == 200
            assert http.get(base + "api/config").status_code == 200  # cookie from the URL
            bad = http.get(base + "api/config", headers={"host": "attacker.example"})
            assert bad.status_code == 403
    finally:
        vis.stop()


def test_bind_all_warns(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("uvicorn")
    vis = image_visualizer(1, 8)
    with caplog.at_level("WARNING", logger="perspicio.insights"):
        vis.serve(bind_all=True)
    try:
        assert any("all interfaces" in r.getMessage() for r in caplog.records)
        port = vis._server.port if vis._server else 0
        headers = {"X-Perspicio-Token": str(vis.token), "host": f"10.1.2.3:{port}"}
        with httpx.Client(trust_env=False) as http:
            ok = http.get(f"http://127.0.0.1:{port}/api/config", headers=headers)
            assert ok.status_code == 200  # an IP address cannot be rebound
    finally:
        vis.stop()


def _checker(op: Any, failures: list[str], statuses: set[int]) -> Any:
    from hypothesis import HealthCheck, settings

    @settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        response = case.call(headers={"X-Perspicio-Token": TOKEN})
        statuses.add(response.status_code)
        if response.status_code >= 500:
            failures.append(f"{op.method} {op.path}: {response.status_code} {response.text}")

    return check


def test_fuzzing_finds_no_server_error() -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import given

    from perspicio.insights.server import create_app

    vis = image_visualizer(1, 4)
    app = create_app(vis.engine, token=TOKEN, allowed_hosts=None)
    schema = schemathesis.openapi.from_asgi("/openapi.json?token=" + TOKEN, app)
    failures: list[str] = []
    statuses: set[int] = set()
    for operation in schema.get_all_operations():
        op = operation.ok()
        given(case=op.as_strategy())(_checker(op, failures, statuses))()
    vis.engine.jobs.cancel_all()
    assert failures == []
    assert len(list(schema.get_all_operations())) >= 7
    assert {200, 422} <= statuses  # the token was accepted: the requests reached the handlers


def test_fifty_concurrent_requests_get_no_5xx() -> None:
    pytest.importorskip("uvicorn")
    vis = image_visualizer(2, 16)
    url = vis.serve()
    base = url.split("?")[0]
    requests: list[tuple[str, str, Any]] = []
    for i in range(50):
        kind = i % 5
        if kind == 0:
            requests.append(("GET", "api/config", None))
        elif kind == 1:
            requests.append(("POST", "api/fetch", {"method": "Saliency", "start": i % 16}))
        elif kind == 2:
            body = {"example": i % 16, "model": i % 2, "target": i % 10, "method": "Saliency"}
            requests.append(("POST", "api/reattribute", body))
        elif kind == 3:
            requests.append(("POST", "api/jobs/fetch", {"method": "InputXGradient", "count": 2}))
        else:
            requests.append(("POST", "api/fetch", {"count": 0}))  # a 422
    try:
        with httpx.Client(
            trust_env=False, headers={"X-Perspicio-Token": str(vis.token)}, timeout=120
        ) as http:

            def send(request: tuple[str, str, Any]) -> int:
                method, path, body = request
                return http.request(method, base + path, json=body).status_code

            with ThreadPoolExecutor(50) as pool:
                codes = list(pool.map(send, requests))
    finally:
        vis.stop()
    assert all(code < 500 for code in codes), codes
    assert codes.count(422) == 10 and codes.count(200) + codes.count(429) == 40
