"""``perspicio insights --result FILE`` and :func:`perspicio.insights.open_result`."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from perspicio.__main__ import main
from perspicio.result import Explanation

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pytest.importorskip("safetensors")


def saved(tmp_path: Path) -> Path:
    path = tmp_path / "result.safetensors"
    Explanation(
        values=(torch.arange(12.0).reshape(4, 3),),
        data=(torch.ones(4, 3),),
        feature_names=("a", "b", "c"),
        method="Saliency",
        target=torch.tensor([1, 0, 1, 1]),
    ).save(path)
    return path


def test_cli_prints_the_url_serves_the_file_and_stops_on_ctrl_c(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from perspicio.insights import viewer

    answers: list[Any] = []

    def interrupt(seconds: float) -> None:  # the serving loop's sleep: use the app, then Ctrl-C
        line = capsys.readouterr().out
        url = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=([\w-]+)", line)
        assert url is not None, line
        with httpx.Client(trust_env=False, timeout=30) as http:
            answers.append(http.get(url.group(1) + "api/config").status_code)  # no token
            headers = {"X-Perspicio-Token": url.group(2)}
            answers.append(http.get(url.group(1) + "api/config", headers=headers).json())
            body = {"targets": ["1"], "count": 8}
            page = http.post(url.group(1) + "api/result/page", json=body, headers=headers)
            answers.append(page.json())
        raise KeyboardInterrupt

    monkeypatch.setattr(viewer, "time", SimpleNamespace(sleep=interrupt))
    assert main(["insights", "--result", str(saved(tmp_path)), "--port", "0"]) == 0
    refused, config, page = answers
    assert refused == 403
    assert config["mode"] == "result" and config["result"]["method"] == "Saliency"
    assert [i["name"] for i in config["result"]["importance"]] == ["c", "b", "a"]
    assert [e["index"] for e in page["examples"]] == [0, 2, 3]


@pytest.mark.parametrize("kind", ["missing", "junk", "text"])
def test_cli_bad_files_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "r.safetensors"
    if kind == "junk":
        path.write_bytes(b"\xff" * 40)
    elif kind == "text":
        path = tmp_path / "notes.txt"
        path.write_text("hello\nworld\n")
    assert main(["insights", "--result", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("perspicio insights: error: ") and err.count("\n") == 1
    assert "Traceback" not in err and str(path) in err


def test_cli_demo_and_result_together_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["insights", "--demo", "--result", str(saved(tmp_path))])
    assert exit_info.value.code == 2
    assert "not both" in capsys.readouterr().err


def test_open_result_serves_an_explanation_until_closed(tmp_path: Path) -> None:
    from perspicio.insights import close_results, open_result

    result = Explanation.load(saved(tmp_path))
    url = open_result(result)
    try:
        assert isinstance(url, str) and "?token=" in url
        with httpx.Client(trust_env=False, timeout=30) as http:
            page = http.get(url)  # the page itself, setting the token cookie
            assert page.status_code == 200 and "static/app.js" in page.text
            config = http.get(url.split("?")[0] + "api/config").json()
            assert config["result"]["examples"] == 4
    finally:
        close_results()
    with httpx.Client(trust_env=False, timeout=5) as http, pytest.raises(httpx.TransportError):
        http.get(url)


def test_open_result_in_a_notebook_is_a_widget(tmp_path: Path) -> None:
    pytest.importorskip("anywidget")
    from perspicio.insights import open_result

    widget = open_result(str(saved(tmp_path)), notebook=True)
    assert "mountResult" in widget._esm
    reply = widget._perspicio_responder.answer({"id": 1, "route": "result_page", "body": {}})
    assert reply["ok"] and len(reply["body"]["examples"]) == 4
    widget.close()
