"""Who may talk to the explorer's server: the ``Host`` check and the session token.

As Jupyter does, a server started by ``serve()`` requires a per-session token: the printed URL
carries ``?token=...``; opening it sets a cookie, and API clients may send the token as an
``X-Perspicio-Token`` header instead. Requests without it get a 403 (the package's static
files excepted), and so do requests whose ``Host`` header names another site: a web page on
a domain the attacker rebinds to 127.0.0.1 still sends its own domain as ``Host``.
"""

from __future__ import annotations

import hmac
import ipaddress
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
TOKEN_HEADER = b"x-perspicio-token"


def error_response(status: int, message: str, detail: Any = None) -> JSONResponse:
    """The JSON body every refusal has: ``{"error": message, "detail": detail}``."""
    return JSONResponse({"error": message, "detail": detail}, status_code=status)


def host_name(header: str) -> str:
    """The host part of a ``Host`` header, lower case: ``[::1]:80`` -> ``[::1]``."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class Guard:
    """ASGI middleware: the ``Host`` check and the session token.

    Args:
        app: The application.
        token: The session token, or ``None`` for no token check.
        allowed_hosts: Host names accepted in the ``Host`` header (``None``: any).
        allow_ip_hosts: Also accept any IP address as host (when listening on all
            interfaces; an IP address cannot be rebound).
        cookie: The name of the cookie carrying the token.
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        allowed_hosts: frozenset[str] | None,
        allow_ip_hosts: bool = False,
        cookie: str = "perspicio-insights",
    ) -> None:
        self.app = app
        self.token = token
        self.allowed_hosts = allowed_hosts
        self.allow_ip_hosts = allow_ip_hosts
        self.cookie = cookie

    def _host_ok(self, host: str) -> bool:
        allowed = self.allowed_hosts is None or host in self.allowed_hosts
        return allowed or (self.allow_ip_hosts and _is_ip(host))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if self.allowed_hosts is not None and not self._host_ok(host):
            message = f"Host {host[:100]!r} is not allowed (protection against DNS rebinding)"
            await error_response(403, message)(scope, receive, send)
            return
        if self.token is None or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        cookies = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
        given = [
            query,
            headers.get(TOKEN_HEADER, b"").decode("latin-1"),
            cookies[self.cookie].value if self.cookie in cookies else "",
        ]
        if not any(hmac.compare_digest(g.encode(), self.token.encode()) for g in given if g):
            message = "missing or wrong token: open the URL that serve() printed (?token=...)"
            await error_response(403, message)(scope, receive, send)
            return
        if query != self.token:
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{self.cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, receive, send_with_cookie)
