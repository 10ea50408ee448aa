"""The explorer as a web app: a FastAPI application served by uvicorn.

Routes: ``GET /`` (the page), ``GET /static/*`` (its scripts and styles), ``GET /api/config``,
``POST /api/fetch``, ``POST /api/reattribute`` and ``GET /openapi.json``. Every refusal is a
JSON body ``{"error": message, "detail": ...}`` with a 4xx status. Request handlers are plain
functions, which FastAPI runs in its thread pool, so the page and other requests are served
while an attribution computes.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from perspicio._core.validate import ArgumentError
from perspicio.insights import schemas as s
from perspicio.insights.engine import Engine
from perspicio.insights.store import InsightsError

MAX_BODY_BYTES = 64 * 1024
_CSP = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'"
)
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": s.ErrorResponse} for code in (413, 422)}
log = logging.getLogger("perspicio.insights")


def static_dir() -> str:
    """The folder of the frontend's files, shipped inside the package."""
    return str(resources.files("perspicio.insights") / "static")


def _error(status: int, message: str, detail: Any = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail}, status_code=status)


class BodyLimit:
    """ASGI middleware refusing request bodies over ``limit`` bytes with a 413.

    The body is read (at most ``limit`` bytes of it) before the application sees the request,
    so a chunked upload without a Content-Length is refused the same way.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body over {self.limit} bytes"
        await _error(413, message)(scope, receive, send)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InsightsError)
    async def insights_error(request: Request, exc: InsightsError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, detail = s.validation_message(list(exc.errors()))
        return _error(422, message, detail)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))


def create_app(engine: Engine, debug: bool = False) -> FastAPI:
    """The FastAPI application answering for ``engine``."""
    app = FastAPI(
        title="perspicio insights",
        summary="Browse a model's predictions and their attributions",
        docs_url=None,  # the interactive docs pages load scripts from a CDN
        redoc_url=None,
        debug=debug,
    )
    app.add_middleware(BodyLimit)
    _install_error_handlers(app)

    @app.get("/api/config", response_model=s.ConfigResponse)
    def config() -> s.ConfigResponse:
        return engine.config()

    @app.post("/api/fetch", response_model=s.FetchResponse, responses=_ERRORS)
    def fetch(request: s.FetchRequest) -> s.FetchResponse:
        return engine.fetch(request)

    @app.post("/api/reattribute", response_model=s.ReattributeResponse, responses=_ERRORS)
    def reattribute(request: s.ReattributeRequest) -> s.ReattributeResponse:
        return engine.reattribute(request)

    page = (resources.files("perspicio.insights") / "static" / "index.html").read_text("utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": _CSP})

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    return app


class ServerHandle:
    """uvicorn serving :func:`create_app` in a background thread.

    Args:
        engine: The request handlers.
        port: The port, or ``None`` for a free one.
        bind_all: Listen on all interfaces instead of 127.0.0.1.
        debug: Log each request.
    """

    def __init__(
        self, engine: Engine, port: int | None = None, bind_all: bool = False, debug: bool = False
    ) -> None:
        if port is not None and not 0 <= int(port) <= 65535:
            raise ArgumentError(f"port must be in 0..65535, got {port}")
        self.engine = engine
        self.host = "0.0.0.0" if bind_all else "127.0.0.1"
        self.port = int(port or 0)
        self.debug = debug
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """Where to point a browser."""
        host = socket.gethostname() if self.host == "0.0.0.0" else self.host
        return f"http://{host}:{self.port}/"

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 20.0) -> None:
        """Bind the socket, start serving, and return once requests are accepted."""
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.engine, self.debug),
            log_level="debug" if self.debug else "warning",
            access_log=self.debug,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name="perspicio-insights",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the insights server did not start in time")
            time.sleep(0.01)
        log.info("insights serving at %s", self.url)

    def wait(self) -> None:
        """Block until the server stops; Ctrl-C stops it."""
        try:
            while self.running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
