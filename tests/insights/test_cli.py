"""``perspicio insights --demo`` and ``python -m perspicio.insights.example``."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from perspicio.__main__ import main

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pytest.importorskip("sklearn")


def test_insights_without_demo_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["insights"])
    assert exit_info.value.code == 2
    assert "--demo" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 1
    assert "insights" in capsys.readouterr().out


@pytest.mark.parametrize("entry", ["console script", "example module"])
def test_demo_prints_the_url_serves_and_stops_on_ctrl_c(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], entry: str
) -> None:
    from perspicio.insights import example

    answers = []

    def interrupt(seconds: float) -> None:  # the serving loop's sleep: use the app, then Ctrl-C
        line = capsys.readouterr().out
        url = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=([\w-]+)", line)
        assert url is not None, line
        headers = {"X-Perspicio-Token": url.group(2)}
        with httpx.Client(trust_env=False, timeout=60, headers=headers) as http:
            answers.append(http.get(url.group(1) + "api/config").json())
            answers.append(http.post(url.group(1) + "api/fetch", json={"count": 2}).json())
        raise KeyboardInterrupt

    monkeypatch.setattr(example, "time", SimpleNamespace(sleep=interrupt))
    if entry == "console script":
        assert main(["insights", "--demo", "--port", "0"]) == 0
    else:
        assert example.main([]) == 0
    config, fetched = answers
    assert config["classes"] == [str(d) for d in range(10)]
    assert config["features"] == [{"name": "Digit", "type": "image"}]
    assert len(fetched["examples"]) == 2
    assert fetched["examples"][0]["models"][0]["model_name"] == "ConvNet"


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_bad_port_is_one_line(capsys: pytest.CaptureFixture[str], port: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["insights", "--demo", "--port", port])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--port: must be an integer in 0..65535" in err and "Traceback" not in err


def test_a_busy_port_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from perspicio.insights import example

    monkeypatch.setattr(example, "digits_visualizer", lambda: example_visualizer())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["insights", "--demo", "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert (
        err.startswith("perspicio insights: error: cannot listen on 127.0.0.1:")
        and str(port) in err
    )


def example_visualizer() -> object:
    from .conftest import image_visualizer

    return image_visualizer(1, 4)


@pytest.mark.parametrize("kind", ["text", "multimodal"])
def test_text_and_multimodal_demos_train_and_explain(kind: str) -> None:
    from perspicio.insights.example import demo_visualizer

    vis = demo_visualizer(kind)
    config = vis.get_insights_config()
    views = vis.visualize(method="IntegratedGradients", count=2, arguments={"n_steps": 8})
    assert len(views) == 2
    correct = [
        m["correct"] for e in vis.visualize(method="Saliency", count=32) for m in e["models"]
    ]
    assert sum(correct) >= 0.8 * len(correct)  # the model did learn
    features = views[0]["models"][0]["features"]
    if kind == "text":
        assert config["features"] == [{"name": "Review", "type": "text"}]
        assert len(features[0]["base"]) == 8 and all(
            isinstance(t, str) for t in features[0]["base"]
        )
        assert features[0]["contribution"] == pytest.approx(1.0)
    else:
        assert [f["type"] for f in features] == ["image", "general"]
        assert features[1]["base"]["categories"] == ["age", "blood pressure", "weight"]
