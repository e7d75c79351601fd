"""Turnout's HTTP listeners: an aiohttp AppRunner whose protocol answers an oversized request head the way
HTTP says (431 for headers, 414 for the request line) and never quotes the client's own bytes back — not in
the answer, not in the log.

aiohttp's parser refuses such requests itself, before any handler or middleware runs, answers `400` with the
first 100 bytes of the offending line in the body and logs a traceback whose message quotes them too — for an
`Authorization` header that is the caller's token. Everything else about the listener is stock aiohttp.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

__all__ = ["GuardedAppRunner", "head_error_status"]


def head_error_status(exc: BaseException | None, status: int) -> int:
    """The status for a request the parser refused: 431/414 for an oversized head, else unchanged."""
    if isinstance(exc, LineTooLong):
        line = exc.args[0] if exc.args else b""
        line = line.encode() if isinstance(line, str) else bytes(line)
        return 414 if line.startswith(b"/") or b" /" in line[:16] else 431
    if isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc.message):
        return 431
    return status


class _GuardedHandler(RequestHandler):
    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):  # one line, without the refused bytes or a traceback
            remote = args[1] if len(args) > 1 else "?"
            self.logger.warning(
                "malformed request from %s refused (%s, HTTP %s)",
                remote,
                type(exc).__name__,
                head_error_status(exc, exc.code),
            )
            return
        super().log_exception(*args, **kw)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, BadHttpMessage):
            status = head_error_status(exc, status)
            # A fixed text: aiohttp's own message quotes the refused bytes (tokens included).
            message = {431: "431 Request Header Fields Too Large", 414: "414 URI Too Long"}.get(
                status, "400 Bad Request"
            )
        return super().handle_error(request, status, exc, message)


class _GuardedServer(Server):
    def __call__(self) -> RequestHandler:
        return _GuardedHandler(self, loop=self._loop, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """`web.AppRunner` with the guarded request handler; use it exactly like AppRunner."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = _GuardedServer  # same state, one overridden factory method
        return server
