"""``serve()`` in a background thread: binding, concurrency while computing, ``stop()``."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from perspicio.insights import AttributionVisualizer, Batch
from perspicio.insights.features import GeneralFeature

from .conftest import image_visualizer

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")


@pytest.fixture
def http() -> Iterator[Any]:
    """An HTTP client that never goes through a proxy from the environment, closed after."""
    with httpx.Client(trust_env=False) as client:
        yield client


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return True
    return False


def test_serve_binds_localhost_on_a_free_port_and_stops(http: Any) -> None:
    vis = image_visualizer(n_models=1, n=8)
    url = vis.serve()
    try:
        assert vis.url == url and vis.token is not None
        assert url.startswith("http://127.0.0.1:") and url.endswith(f"/?token={vis.token}")
        base = url.split("?")[0]
        port = int(base.rsplit(":", 1)[1].strip("/"))
        assert vis._server is not None and vis._server._socket is not None
        assert vis._server._socket.getsockname() == ("127.0.0.1", port)
        assert vis.serve() == url  # already running: same server
        assert "perspicio insights" in http.get(url).text
        body = http.post(base + "api/fetch", json={"method": "Saliency", "count": 2})
        assert body.status_code == 200 and len(body.json()["examples"]) == 2
    finally:
        vis.stop()
    assert vis.url is None
    assert _refused("127.0.0.1", port)
    vis.stop()  # stopping twice is harmless


def test_serve_on_a_given_port_and_bind_all(http: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    vis = image_visualizer(n_models=1, n=8)
    vis.serve(port=port, bind_all=True)
    try:
        assert vis._server is not None and vis._server.host == "0.0.0.0"
        assert vis.url is not None and f":{port}/?token=" in vis.url
        headers = {"X-Perspicio-Token": str(vis.token)}
        assert http.get(f"http://127.0.0.1:{port}/api/config", headers=headers).status_code == 200
    finally:
        vis.stop()


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        vis = image_visualizer(n_models=1, n=8)
        with pytest.raises(OSError, match="cannot listen"):
            vis.serve(port=taken.getsockname()[1])


class _Gate(nn.Module):
    """A linear model whose backward pass waits until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.entered = threading.Event()
        self.release = threading.Event()

    def forward(self, x: Tensor) -> Tensor:
        if x.requires_grad:  # an attribution, not the scoring pass
            self.entered.set()
            self.release.wait(timeout=20)
        return self.linear(x)


def test_server_answers_while_an_attribution_computes(http: Any) -> None:
    model = _Gate()
    data = [Batch(torch.rand(4, 3), torch.tensor([0, 1, 0, 1]))]
    vis = AttributionVisualizer(model, ["a", "b"], [GeneralFeature("x", ["p", "q", "r"])], data)
    vis.serve()
    url = f"http://127.0.0.1:{vis._server.port}/" if vis._server else ""
    http.headers["X-Perspicio-Token"] = str(vis.token)
    try:
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(http.post, url + "api/fetch", json={"method": "Saliency"})
            assert model.entered.wait(timeout=20)
            assert http.get(url + "api/config", timeout=5).status_code == 200
            assert http.get(url, timeout=5).status_code == 200
            model.release.set()
            assert slow.result().status_code == 200
    finally:
        model.release.set()
        vis.stop()
