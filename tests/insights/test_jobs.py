"""Background jobs: progress, results, cancellation, slow-job warnings, and Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from perspicio.insights import AttributionVisualizer, Batch
from perspicio.insights.features import GeneralFeature
from perspicio.insights.jobs import Job, JobManager, Watched

pytest.importorskip("fastapi")


class Slow(nn.Module):
    """A linear model that sleeps in every forward pass that carries gradients or many rows."""

    def __init__(self, delay: float = 0.02) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.delay = delay
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        time.sleep(self.delay)
        return self.linear(x.flatten(1)[:, :3])


def _poll(client: Any, job: str, until: set[str]) -> dict[str, Any]:
    for _ in range(3000):
        status = client.get(f"/api/jobs/{job}").json()
        if status["state"] in until:
            return status
        time.sleep(0.01)
    raise AssertionError(f"job never reached {until}: {status}")


def test_fetch_job_gives_the_same_answer_as_a_plain_fetch(client: Any) -> None:
    body = {"method": "IntegratedGradients", "arguments": {"n_steps": 8}, "count": 3}
    started = client.post("/api/jobs/fetch", json=body).json()
    assert started["job"] and started["warning"] is None and started["evaluations"] == 9
    status = _poll(client, started["job"], {"done", "failed"})
    assert status["state"] == "done" and status["progress"] == 1.0
    assert status["result"] == client.post("/api/fetch", json=body).json()


def test_reattribute_job_and_bad_jobs(client: Any) -> None:
    body = {"example": 2, "model": 1, "target": 7, "method": "Saliency"}
    started = client.post("/api/jobs/reattribute", json=body).json()
    status = _poll(client, started["job"], {"done", "failed"})
    assert status["result"]["view"]["target"]["index"] == 7
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.post("/api/jobs/nope/cancel").status_code == 404
    bad = client.post("/api/jobs/reattribute", json={**body, "example": 99})
    assert bad.status_code == 422 and "past the end" in bad.json()["error"]


def _slow_client(delay: float, n_features: int = 3) -> Any:
    from fastapi.testclient import TestClient

    from perspicio.insights.server import create_app

    model = Slow(delay)
    data = [Batch(torch.rand(4, n_features), torch.tensor([0, 1, 0, 1]))]
    names = [f"f{i}" for i in range(n_features)]
    vis = AttributionVisualizer(model, ["a", "b"], [GeneralFeature("x", names)], data)
    return TestClient(create_app(vis.engine)), model, vis


def test_cancel_stops_the_work_within_a_forward_pass() -> None:
    client, model, vis = _slow_client(0.05)
    with client:
        body = {"method": "ShapleyValueSampling", "count": 4, "arguments": {"n_samples": 500}}
        body["arguments"]["perturbations_per_eval"] = 1
        started = client.post("/api/jobs/fetch", json={**body, "confirm": True}).json()
        running = _poll(client, started["job"], {"running"})
        for _ in range(500):  # wait until the attribution itself has begun
            running = client.get(f"/api/jobs/{started['job']}").json()
            if running["progress"] > 0.05:
                break
            time.sleep(0.01)
        assert running["state"] == "running" and "attributing" in running["message"]
        client.post(f"/api/jobs/{started['job']}/cancel")
        status = _poll(client, started["job"], {"cancelled", "done", "failed"})
        assert status["state"] == "cancelled" and status["result"] is None
        calls = model.calls
        time.sleep(0.2)
        assert model.calls == calls  # nothing runs after the cancellation
        assert vis.engine.jobs.running == []


def test_a_slow_job_asks_for_confirmation_first(monkeypatch: pytest.MonkeyPatch) -> None:
    from perspicio.insights import engine as engine_module

    client, _, _vis = _slow_client(0.0)
    with client:
        monkeypatch.setattr(engine_module, "SLOW_SECONDS", 0.0)
        body = {"method": "FeatureAblation", "count": 2}
        answer = client.post("/api/jobs/fetch", json=body).json()
        assert answer["job"] is None and "Run it anyway" in answer["warning"]
        assert answer["evaluations"] == 4 and answer["estimate_seconds"] > 0
        answer = client.post("/api/jobs/fetch", json={**body, "confirm": True}).json()
        assert _poll(client, answer["job"], {"done", "failed"})["state"] == "done"


def test_an_abandoned_job_cancels_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    from perspicio.insights import jobs

    monkeypatch.setattr(jobs, "ORPHAN_SECONDS", 0.0)
    manager = JobManager()
    model = Slow(0.001)

    def work(job: Job) -> None:
        while True:
            Watched(model, job)(torch.rand(1, 3))

    job = manager.start("test", work)
    assert job.thread is not None
    job.thread.join(10)
    assert job.state == "cancelled"


def test_watched_counts_rows_and_leaves_the_model_alone() -> None:
    model = Slow(0.0)
    job = Job("test")
    job.step(0.0, 1.0, "x", expected_rows=10)
    out = Watched(model, job)(torch.ones(5, 3))
    assert job.progress == pytest.approx(0.5)
    assert torch.equal(out, model(torch.ones(5, 3)))
    assert not model._forward_hooks and not model._forward_pre_hooks


def test_closing_a_widget_cancels_its_jobs() -> None:
    pytest.importorskip("anywidget")
    _, _, vis = _slow_client(0.05)
    widget = vis.widget()
    responder = widget._perspicio_responder
    body = {"method": "ShapleyValueSampling", "arguments": {"n_samples": 500}, "confirm": True}
    reply = responder.answer({"id": 1, "route": "job_fetch", "body": body})
    job = vis.engine.jobs.get(reply["body"]["job"])
    widget.close()
    assert job.state == "cancelled"


SERVE_SCRIPT = """
import time, torch, httpx
from torch import nn
from perspicio.insights import AttributionVisualizer, Batch
from perspicio.insights.features import ImageFeature

class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.linear = nn.Linear(4, 2)
    def forward(self, x):
        time.sleep(0.02)
        return self.linear(self.conv(x).mean((2, 3)))

data = [Batch(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))]
vis = AttributionVisualizer(Slow(), ["a", "b"], [ImageFeature("img", None, None)], data)
url = vis.serve()
base, token = url.split("?token=")
body = {"method": "FeatureAblation", "count": 2, "confirm": True,
        "arguments": {"feature_grouping": "pixels", "perturbations_per_eval": 1}}
http = httpx.Client(trust_env=False, headers={"X-Perspicio-Token": token})
job = http.post(base + "api/jobs/fetch", json=body).json()["job"]
deadline = time.monotonic() + 60
status = http.get(base + "api/jobs/" + job).json()
while status["progress"] < 0.06 and status["state"] == "running" and time.monotonic() < deadline:
    time.sleep(0.02)
    status = http.get(base + "api/jobs/" + job).json()
if status["state"] != "running":
    print("NOT RUNNING", status, flush=True)
try:
    print("RUNNING", flush=True)
    while vis.url is not None:
        time.sleep(0.05)
except KeyboardInterrupt:
    vis.stop()
print("STOPPED", flush=True)
"""


def test_ctrl_c_during_a_job_exits_promptly_and_cleanly(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    pytest.importorskip("httpx")
    script = tmp_path / "serve.py"
    script.write_text(SERVE_SCRIPT)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "RUNNING"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)  # it used to hang 10 s, then abort
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "STOPPED" in out
    assert "terminate called" not in err and "Traceback" not in err


def test_job_threads_are_not_daemons() -> None:
    manager = JobManager()
    release = threading.Event()
    job = manager.start("test", lambda job: release.wait(5))
    assert job.thread is not None and not job.thread.daemon
    release.set()
    job.thread.join(5)
    assert job.state == "done"


def test_too_many_running_jobs_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from perspicio.insights import jobs
    from perspicio.insights.store import InsightsError

    monkeypatch.setattr(jobs, "MAX_RUNNING", 2)
    manager = JobManager()
    release = threading.Event()
    started = [manager.start("wait", lambda job: release.wait(10)) for _ in range(2)]
    with pytest.raises(InsightsError, match="2 jobs are running") as refused:
        manager.start("wait", lambda job: None)
    assert refused.value.status == 429
    release.set()
    for job in started:
        assert job.thread is not None
        job.thread.join(10)
    assert manager.start("now", lambda job: 1).thread is not None
