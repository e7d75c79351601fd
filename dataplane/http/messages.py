"""Requests and answers as the data plane's handlers see them (served by dataplane/http/listener.py).

A handler takes a `Request` (method, path, query, lower-cased headers, the whole body) and returns a `Response`
(a whole answer) or a `StreamResponse` it has written as it went (chunked SSE). An `App` holds the routes, the
state handlers read (`app[KEY]`) and the startup and cleanup hooks. The names and signatures follow aiohttp's,
which the control plane uses, so a reader of one knows the other.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Generic, Protocol, TypeVar

import orjson

__all__ = [
    "ClientConnection",
    "App",
    "AppKey",
    "Request",
    "Response",
    "StreamResponse",
    "Handler",
    "error_response",
    "encode_head",
    "encode_response",
]

T = TypeVar("T")
Handler = Callable[["Request"], Awaitable["Response | StreamResponse"]]
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


class AppKey(Generic[T]):
    """A typed key for state kept on an App (`app[KEY] = value`)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<AppKey {self.name}>"


class App:
    """Routes, state and startup/cleanup hooks: what a Listener serves."""

    def __init__(self, *, max_body_bytes: Callable[[], int] | int) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self._state: dict[AppKey[Any], Any] = {}
        self.on_startup: list[Callable[[App], Awaitable[None]]] = []
        self.on_cleanup: list[Callable[[App], Awaitable[None]]] = []
        self._max_body = max_body_bytes if callable(max_body_bytes) else (lambda: max_body_bytes)

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def max_body_bytes(self) -> int:
        return self._max_body()

    def __getitem__(self, key: AppKey[T]) -> T:
        return self._state[key]  # type: ignore[no-any-return]

    def __setitem__(self, key: AppKey[T], value: T) -> None:
        self._state[key] = value


class ClientConnection(Protocol):
    """What a streamed answer needs from the client's connection (the listener's `Connection` meets it)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


class Request:
    """One whole request: method, path, query, lower-cased headers (repeated fields joined with ", "), body."""

    __slots__ = ("app", "method", "path", "query", "headers", "body", "_conn", "_keep_alive", "_http11")

    def __init__(
        self,
        app: App,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        conn: ClientConnection | None = None,
        keep_alive: bool = False,
        http11: bool = True,
    ) -> None:
        self.app, self.method, self.path, self.query, self.headers, self.body = app, method, path, query, headers, body
        self._conn, self._keep_alive, self._http11 = conn, keep_alive, http11


class Response:
    """A whole answer, sent with its Content-Length."""

    __slots__ = ("body", "status", "content_type", "headers")

    def __init__(
        self,
        body: bytes = b"",
        *,
        status: int = 200,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.body, self.status, self.content_type, self.headers = body, status, content_type, headers


class StreamResponse:
    """An answer written as it goes (chunked; close-delimited for an HTTP/1.0 client): `await prepare(request)`,
    `await write(data)` as often as needed, `await write_eof()`. A write to a client that is gone raises
    ConnectionResetError."""

    def __init__(self, *, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self.status, self.headers = status, dict(headers or {})
        self._conn: ClientConnection | None = None
        self._chunked = True
        self.prepared = self.eof = False

    async def prepare(self, request: Request) -> None:
        conn = request._conn
        if conn is None:
            raise RuntimeError("prepare() needs a request read by a Listener")
        self._conn, self.prepared = conn, True
        self._chunked = request._http11  # HTTP/1.0 has no chunks: the end of the connection ends the answer
        conn.write(
            encode_head(
                self.status,
                self.headers,
                request._keep_alive,
                b"transfer-encoding: chunked\r\n" if self._chunked else b"",
            )
        )
        await conn.drain()

    async def write(self, data: bytes) -> None:
        conn = self._conn
        if conn is None or self.eof:
            raise RuntimeError("write() before prepare() or after write_eof()")
        if not data:
            return
        conn.write(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data)
        await conn.drain()

    async def write_eof(self) -> None:
        if self._conn is None or self.eof:
            return
        self.eof = True
        if self._chunked:
            self._conn.write(b"0\r\n\r\n")
        await self._conn.drain()


def error_response(
    status: int,
    message: str,
    type_: str,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """An answer in OpenAI's error shape."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code, **extra}}
    return Response(orjson.dumps(body), status=status, headers=headers)


_date_second = -1
_date_line = b""


def _date() -> bytes:
    """The Date header line, formatted once per second."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        _date_second, _date_line = now, f"date: {formatdate(now, usegmt=True)}\r\n".encode()
    return _date_line


def encode_head(status: int, headers: Mapping[str, str] | None, keep_alive: bool, extra: bytes) -> bytes:
    parts = [b"HTTP/1.1 %d %b\r\n" % (status, _REASONS.get(status, b"Unknown")), _date(), extra]
    if headers:
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r}: line breaks are not allowed in a header")
            parts.append(f"{name}: {value}\r\n".encode())
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def encode_response(resp: Response, keep_alive: bool) -> bytes:
    extra = b"content-type: %b\r\ncontent-length: %d\r\n" % (resp.content_type.encode(), len(resp.body))
    return encode_head(resp.status, resp.headers, keep_alive, extra) + resp.body
