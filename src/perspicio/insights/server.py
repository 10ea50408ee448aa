"""The explorer as a web app: a FastAPI application served by uvicorn.

Routes: ``GET /`` (the page), ``GET /static/*`` (its scripts and styles), ``GET /api/config``,
``POST /api/fetch``, ``POST /api/reattribute`` (answered when done), ``POST /api/jobs/fetch``,
``POST /api/jobs/reattribute`` (start a background job), ``GET /api/jobs/{id}`` (progress and
result), ``POST /api/jobs/{id}/cancel`` and ``GET /openapi.json``. In result mode (over a
:class:`~perspicio.insights.results.ResultEngine`) ``POST /api/result/page`` replaces the
fetch, re-attribute and job routes, which answer 409. Every refusal is a JSON body
``{"error": message, "detail": ...}`` with a 4xx status.

As Jupyter does, a server started by :class:`ServerHandle` requires a per-session token:
the printed URL carries ``?token=...``; opening it sets a cookie, and API clients may send
the token as an ``X-Perspicio-Token`` header instead. Requests without it get a 403 (static
files excepted), and so do requests whose ``Host`` header names another site, which defeats
DNS rebinding.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from perspicio._core.validate import ArgumentError
from perspicio.insights import schemas as s
from perspicio.insights.engine import Engine
from perspicio.insights.guard import LOOPBACK_NAMES, Guard, error_response
from perspicio.insights.results import ResultEngine
from perspicio.insights.store import InsightsError

MAX_BODY_BYTES = 64 * 1024
_CSP = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'"
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": s.ErrorResponse} for code in (403, 404, 409, 413, 422, 429, 503)
}
JobId = Annotated[str, Path(min_length=1, max_length=64)]
log = logging.getLogger("perspicio.insights")


def static_dir() -> str:
    """The folder of the frontend's files, shipped inside the package."""
    return str(resources.files("perspicio.insights") / "static")


_error = error_response


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
        response = _error(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})  # e.g. a 405's Allow
        return response


def _live_routes(app: FastAPI, engine: Engine) -> None:
    """Fetch, re-attribute and their jobs: the explorer over models."""

    @app.post("/api/fetch", response_model=s.FetchResponse, responses=_ERRORS)
    def fetch(request: s.FetchRequest) -> s.FetchResponse:
        return engine.fetch(request)

    @app.post("/api/reattribute", response_model=s.ReattributeResponse, responses=_ERRORS)
    def reattribute(request: s.ReattributeRequest) -> s.ReattributeResponse:
        return engine.reattribute(request)

    @app.post("/api/jobs/fetch", response_model=s.JobStarted, responses=_ERRORS)
    def start_fetch(request: s.FetchRequest) -> s.JobStarted:
        return engine.start_job(request)

    @app.post("/api/jobs/reattribute", response_model=s.JobStarted, responses=_ERRORS)
    def start_reattribute(request: s.ReattributeRequest) -> s.JobStarted:
        return engine.start_job(request)

    @app.get("/api/jobs/{job_id}", response_model=s.JobStatus, responses=_ERRORS)
    def job_status(job_id: JobId) -> s.JobStatus:
        return engine.job_status(job_id)

    @app.post("/api/jobs/{job_id}/cancel", response_model=s.JobStatus, responses=_ERRORS)
    def cancel_job(job_id: JobId) -> s.JobStatus:
        return engine.cancel_job(job_id)


def _result_routes(app: FastAPI, engine: ResultEngine) -> None:
    """Pages of a saved result; the routes that would run a model answer 409."""

    @app.post("/api/result/page", response_model=s.ResultPage, responses=_ERRORS)
    def result_page(request: s.ResultPageRequest) -> s.ResultPage:
        return engine.page(request)

    @app.post("/api/fetch", include_in_schema=False)
    @app.post("/api/reattribute", include_in_schema=False)
    @app.post("/api/jobs/fetch", include_in_schema=False)
    @app.post("/api/jobs/reattribute", include_in_schema=False)
    def read_only() -> None:
        raise engine.refuse()


def create_app(
    engine: Engine | ResultEngine,
    debug: bool = False,
    token: str | None = None,
    allowed_hosts: frozenset[str] | None = None,
    allow_ip_hosts: bool = False,
    cookie: str = "perspicio-insights",
) -> FastAPI:
    """The FastAPI application answering for ``engine``.

    Args:
        engine: The request handlers.
        debug: FastAPI's debug mode.
        token: Require this session token (see :class:`Guard`); ``None``: no token.
        allowed_hosts: Accepted ``Host`` names; ``None``: any.
        allow_ip_hosts: Also accept IP addresses as hosts.
        cookie: The token cookie's name.
    """
    app = FastAPI(
        title="perspicio insights",
        summary="Browse a model's predictions and their attributions",
        docs_url=None,  # the interactive docs pages load scripts from a CDN
        redoc_url=None,
        debug=debug,
    )
    app.add_middleware(BodyLimit)
    app.add_middleware(
        Guard,
        token=token,
        allowed_hosts=allowed_hosts,
        allow_ip_hosts=allow_ip_hosts,
        cookie=cookie,
    )
    _install_error_handlers(app)

    @app.get("/api/config", response_model=s.ConfigResponse)
    def config() -> s.ConfigResponse:
        return engine.config()

    if isinstance(engine, ResultEngine):
        _result_routes(app, engine)
    else:
        _live_routes(app, engine)
    page = (resources.files("perspicio.insights") / "static" / "index.html").read_text("utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": _CSP})

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    return app


class ServerHandle:
    """uvicorn serving :func:`create_app` in a background thread, behind a session token.

    Args:
        engine: The request handlers.
        port: The port, or ``None`` for a free one.
        bind_all: Listen on all interfaces instead of 127.0.0.1 (logs a warning).
        debug: Log each request.
        token: The session token (a random one when ``None``).
    """

    def __init__(
        self,
        engine: Engine | ResultEngine,
        port: int | None = None,
        bind_all: bool = False,
        debug: bool = False,
        token: str | None = None,
    ) -> None:
        if isinstance(port, bool) or (port is not None and not isinstance(port, int)):
            raise TypeError(f"port must be an int or None, got {port!r}")
        if port is not None and not 0 <= port <= 65535:
            raise ArgumentError(f"port must be in 0..65535, got {port}")
        self.engine = engine
        self.host = "0.0.0.0" if bind_all else "127.0.0.1"
        self.port = int(port or 0)
        self.debug = debug
        self.token = token or secrets.token_urlsafe(24)
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        """The server's address, without the token."""
        host = socket.gethostname() if self.host == "0.0.0.0" else self.host
        return f"http://{host}:{self.port}/"

    @property
    def url(self) -> str:
        """Where to point a browser: the address with ``?token=...``."""
        return f"{self.base_url}?token={self.token}"

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _allowed_hosts(self) -> frozenset[str]:
        names = set(LOOPBACK_NAMES) | {self.host}
        if self.host == "0.0.0.0":
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        return frozenset(names)

    def start(self, timeout: float = 20.0) -> None:
        """Bind the socket, start serving, and return once requests are accepted."""
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        self._socket = sock
        self.port = sock.getsockname()[1]
        if self.host == "0.0.0.0":
            log.warning(
                "perspicio insights listens on all interfaces (port %d): anyone who can reach "
                "this machine and has the token can run your models",
                self.port,
            )
        app = create_app(
            self.engine,
            self.debug,
            token=self.token,
            allowed_hosts=self._allowed_hosts(),
            allow_ip_hosts=self.host == "0.0.0.0",
            cookie=f"perspicio-insights-{self.port}",  # cookies ignore ports: one per server
        )
        config = uvicorn.Config(
            app,
            log_level="debug" if self.debug else "warning",
            access_log=self.debug,
            lifespan="off",
            timeout_graceful_shutdown=2,
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
        """Cancel running jobs, stop serving and release the port."""
        self.engine.jobs.cancel_all(timeout=timeout)
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
