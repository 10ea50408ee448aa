"""The explorer as a notebook widget (anywidget: JupyterLab 4, Notebook 7, VS Code, Colab).

The widget's JavaScript is the web app's own UI module followed by a few lines that mount it
on the widget's element; it speaks to Python with anywidget's custom messages instead of
HTTP. Each message ``{"id", "route", "body"}`` is validated with the same pydantic models as
the server and answered by the same :class:`~perspicio.insights.engine.Engine`, in a worker
thread so the kernel stays responsive; the reply is ``{"id", "ok", "status", "body" | "error"}``.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ValidationError

from perspicio.insights import schemas as s
from perspicio.insights.engine import Engine
from perspicio.insights.store import InsightsError

MAX_MESSAGE_BYTES = 64 * 1024
log = logging.getLogger("perspicio.insights")


def _static(name: str) -> str:
    return (resources.files("perspicio.insights") / "static" / name).read_text("utf-8")


def widget_esm() -> str:
    """The widget's ES module: the shared UI followed by the widget glue."""
    return _static("ui.js") + "\n" + _static("widget.js")


def dispatch(engine: Engine, route: Any, body: Any) -> tuple[int, Any]:
    """Answer one request as the server would: ``(status, json_body)``."""
    try:
        if len(json.dumps(body)) > MAX_MESSAGE_BYTES:
            return 413, {"error": f"request body over {MAX_MESSAGE_BYTES} bytes"}
        result: BaseModel
        if route == "config":
            result = engine.config()
        elif route == "fetch":
            result = engine.fetch(s.FetchRequest.model_validate(body or {}))
        elif route == "reattribute":
            result = engine.reattribute(s.ReattributeRequest.model_validate(body))
        else:
            return 404, {"error": f"unknown route {route!r}"}
    except ValidationError as exc:
        message, detail = s.validation_message(exc.errors())
        return 422, {"error": message, "detail": detail}
    except InsightsError as exc:
        return exc.status, {"error": exc.message, "detail": exc.detail}
    except (TypeError, ValueError) as exc:  # e.g. a body that is not JSON-serialisable
        return 422, {"error": f"invalid request: {exc}"}
    return 200, result.model_dump(mode="json")


class Responder:
    """Runs requests from a widget in worker threads and sends the replies back.

    Args:
        engine: The request handlers.
        send: The widget's ``send``.
        workers: Threads answering requests.
        debug: Log each request.
    """

    def __init__(self, engine: Engine, send: Any, workers: int = 2, debug: bool = False) -> None:
        self.engine = engine
        self.send = send
        self.debug = debug
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="perspicio-widget")
        self.last_future: Future | None = None

    def __call__(self, widget: Any, content: Any, buffers: Any = None) -> Future | None:
        """The widget's custom-message callback."""
        if not isinstance(content, dict) or "route" not in content:
            return None  # not one of ours
        if self.debug:
            log.info("widget request %s %s", content.get("route"), content.get("body"))
        self.last_future = self.pool.submit(self.answer, content)
        return self.last_future

    def answer(self, content: dict[str, Any]) -> dict[str, Any]:
        """Answer one message and send the reply; returns the reply."""
        status, body = dispatch(self.engine, content.get("route"), content.get("body"))
        reply: dict[str, Any] = {"id": content.get("id"), "ok": status == 200, "status": status}
        reply["body" if status == 200 else "error"] = body
        try:
            self.send(reply)
        except Exception:  # the comm closed (kernel restarting, widget removed)
            log.warning("could not deliver an insights widget reply", exc_info=True)
        return reply


@lru_cache(maxsize=1)
def widget_class() -> type:
    """The anywidget class (created on first use, so anywidget stays optional)."""
    import anywidget

    class InsightsWidget(anywidget.AnyWidget):  # type: ignore[misc]
        """The explorer in a notebook cell."""

        _esm = widget_esm()
        _css = _static("style.css")

    return InsightsWidget


def make_widget(engine: Engine, debug: bool = False) -> Any:
    """A new widget bound to ``engine``."""
    widget = widget_class()()
    responder = Responder(engine, widget.send, debug=debug)
    widget.on_msg(responder)
    widget._perspicio_responder = responder  # for tests and for waiting on replies
    return widget
