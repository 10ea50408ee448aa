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
