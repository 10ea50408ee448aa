"""The explorer as a notebook widget (anywidget: JupyterLab 4, Notebook 7, VS Code, Colab).

The widget's JavaScript is the web app's own UI module followed by a few lines that mount it
on the widget's element; it speaks to Python with anywidget's custom messages instead of
HTTP. Each message ``{"id", "route", "body"}`` is validated with the same pydantic models as
the server and answered by the same :class:`~perspicio.insights.engine.Engine`, in a worker
thread so the kernel stays responsive; the reply is ``{"id", "ok", "status", "body" | "error"}``.
Routes: ``config``, ``fetch``, ``reattribute``, ``job_fetch``, ``job_reattribute`` (start a
background job), ``job_status`` and ``job_cancel`` (body ``{"job": id}``); over a saved result
(:class:`~perspicio.insights.results.ResultEngine`), ``config`` and ``result_page`` only.
Closing the widget cancels its jobs.
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
from perspicio.insights.results import ResultEngine
from perspicio.insights.store import InsightsError

MAX_MESSAGE_BYTES = 64 * 1024
log = logging.getLogger("perspicio.insights")


def _static(name: str) -> str:
    return (resources.files("perspicio.insights") / "static" / name).read_text("utf-8")


def widget_esm() -> str:
    """The widget's ES module: the shared UI followed by the widget glue."""
    return "\n".join(_static(name) for name in ("ui.js", "result.js", "widget.js"))


def _job_id(body: Any) -> str:
    job = body.get("job") if isinstance(body, dict) else None
    if not isinstance(job, str) or not 0 < len(job) <= 64:
        raise InsightsError(422, f"a job id (a string) is needed, got {job!r}"[:200])
    return job


def _route(engine: Engine | ResultEngine, route: Any, body: Any, owner: str | None) -> BaseModel:
    if route == "config":
        return engine.config()
    if isinstance(engine, ResultEngine):
        if route == "result_page":
            return engine.page(s.ResultPageRequest.model_validate(body or {}))
        if route in ("fetch", "reattribute", "job_fetch", "job_reattribute"):
            raise engine.refuse()
        raise InsightsError(404, f"unknown route {str(route)[:100]!r}")
    if route == "fetch":
        return engine.fetch(s.FetchRequest.model_validate(body or {}))
    if route == "reattribute":
        return engine.reattribute(s.ReattributeRequest.model_validate(body))
    if route == "job_fetch":
        return engine.start_job(s.FetchRequest.model_validate(body or {}), owner)
    if route == "job_reattribute":
        return engine.start_job(s.ReattributeRequest.model_validate(body), owner)
    if route == "job_status":
        return engine.job_status(_job_id(body))
    if route == "job_cancel":
        return engine.cancel_job(_job_id(body))
    raise InsightsError(404, f"unknown route {str(route)[:100]!r}")


def dispatch(
    engine: Engine | ResultEngine, route: Any, body: Any, owner: str | None = None
) -> tuple[int, Any]:
    """Answer one request as the server would: ``(status, json_body)``."""
    try:
        if len(json.dumps(body)) > MAX_MESSAGE_BYTES:
            return 413, {"error": f"request body over {MAX_MESSAGE_BYTES} bytes"}
        result = _route(engine, route, body, owner)
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

    def __init__(
        self, engine: Engine | ResultEngine, send: Any, workers: int = 2, debug: bool = False
    ) -> None:
        self.engine = engine
        self.send = send
        self.debug = debug
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="perspicio-widget")
        self.last_future: Future | None = None
        self.owner = f"widget-{id(self)}"

    def close(self) -> None:
        """Cancel this widget's jobs (the widget was closed)."""
        self.engine.jobs.cancel_all(owner=self.owner, timeout=5.0)
        self.pool.shutdown(wait=False, cancel_futures=True)

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
        status, body = dispatch(self.engine, content.get("route"), content.get("body"), self.owner)
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

        def close(self) -> None:
            """Close the widget and cancel the jobs it started."""
            responder = getattr(self, "_perspicio_responder", None)
            if responder is not None:
                responder.close()
            super().close()

    return InsightsWidget


def make_widget(engine: Engine | ResultEngine, debug: bool = False) -> Any:
    """A new widget bound to ``engine``."""
    widget = widget_class()()
    responder = Responder(engine, widget.send, debug=debug)
    widget.on_msg(responder)
    widget._perspicio_responder = responder  # for tests and for waiting on replies
    return widget
