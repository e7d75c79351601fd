"""One upstream HTTP/1.1 connection (an asyncio protocol around httptools' parser) and the answer read from it.

The pool that keeps these connections per origin, and decides when one is reused, is dataplane/http/upstream.py.
The exceptions here subclass the shared transport-fault vocabulary (adapters/transport_faults.py), so probes and
live traffic classify them from one table.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable

import httptools

from adapters.headers import LowerHeaders
from adapters.transport_faults import BodyTooLarge, NotHTTP

__all__ = [
    "Origin",
    "UpstreamConnection",
    "UpstreamResponse",
    "UpstreamConnectError",
    "UpstreamClosed",
    "UpstreamProtocolError",
    "UpstreamBodyTooLarge",
]

_HIGH_WATER = 256 * 1024  # unread body bytes held before the socket is paused
_LOW_WATER = 64 * 1024

Origin = tuple[str, str, int]  # scheme, host, port


class UpstreamConnectError(OSError):
    """No usable connection: DNS, refused, connect timeout, TLS handshake, or a request we cannot send."""


class UpstreamClosed(ConnectionError):
    """The upstream closed or reset the connection before its answer was complete."""


class UpstreamProtocolError(NotHTTP):
    """The upstream's bytes are not an HTTP/1.1 answer we can read (malformed, or an unknown content encoding)."""


class UpstreamBodyTooLarge(BodyTooLarge):
    """The answer's body is over the caller's limit."""


class UpstreamResponse:
    """One answer: `status` and lower-cased `headers` once `request()` returns; the body via `read*()`.

    Always end with `release()` (back to the pool when read to its end) or `close()` (drop the connection).
    """

    __slots__ = (
        "status",
        "headers",
        "_conn",
        "_chunks",
        "_buffered",
        "_waiter",
        "_error",
        "complete",
        "_decoder",
        "_until_close",
        "_paused",
        "received",
    )

    def __init__(self, conn: UpstreamConnection) -> None:
        self.status = 0
        self.headers: dict[str, str] = LowerHeaders()
        self._conn: UpstreamConnection | None = conn
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self.complete = False
        self._decoder: zlib._Decompress | None = None
        self._until_close = False  # no length and not chunked: the body ends when the connection does
        self._paused = False
        self.received = False  # any byte of the answer arrived (decides whether a stale-connection retry is safe)

    # -- reading ----------------------------------------------------------------------------------
    async def readany(self) -> bytes:
        """What has arrived since the last read (waiting for something), or b"" at the end of the body."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self.complete:
                return b""
            await self._wait()
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        if self._paused and self._conn is not None:
            self._paused = False
            self._conn.resume()
        return data

    async def read(self, limit: int) -> bytes:
        """The whole body; UpstreamBodyTooLarge when it grows past `limit` bytes."""
        parts: list[bytes] = []
        size = 0
        while data := await self.readany():
            size += len(data)
            if size > limit:
                raise UpstreamBodyTooLarge(f"body over {limit} bytes")
            parts.append(data)
        return b"".join(parts)

    async def read_prefix(self, limit: int) -> bytes:
        """The body's first `limit` bytes at most (an error page needs no more); the rest is never read."""
        parts: list[bytes] = []
        size = 0
        while size < limit and (data := await self.readany()):
            parts.append(data)
            size += len(data)
        return b"".join(parts)[:limit]

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- fed by the connection --------------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error as exc:
                self._fail(UpstreamProtocolError(f"undecodable compressed body: {exc}"))
                return
            if not data:
                return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and not self._paused and self._conn is not None:
            self._paused = True
            self._conn.pause()
        self._wake()

    def _finish(self) -> None:
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                self._chunks.append(tail)
        self.complete = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None and not self.complete:
            self._error = exc
            if self._conn is not None:
                self._conn.abort()
        self._wake()

    # -- ending -----------------------------------------------------------------------------------
    def release(self) -> None:
        """Back to the pool when the answer was read to its end and the upstream keeps the connection open."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.done(reusable=self.complete and self._error is None and not self._chunks)

    def close(self) -> None:
        """Drop the connection (an answer abandoned half-way cannot share its connection with the next one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection; at most one answer in flight (no pipelining)."""

    def __init__(self, release: Callable[[UpstreamConnection], None], origin: Origin) -> None:
        self._release, self.origin = release, origin  # release: back to the pool's idle list
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._names: list[bytes] = []
        self._values: list[bytes] = []
        self.resp: UpstreamResponse | None = None
        self._headers_waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._interim = False  # parsing a 1xx answer, which is skipped

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is not a subclass)

    def data_received(self, data: bytes) -> None:
        resp = self.resp
        if resp is None:  # bytes on an idle connection: the upstream is confused; never reuse it
            self.abort()
            return
        resp.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._error(UpstreamProtocolError("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._error(UpstreamProtocolError(f"malformed HTTP answer: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost ends or fails the answer in flight

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        resp = self.resp
        if resp is None:
            return
        if resp.status and resp._until_close and exc is None:
            resp._finish()  # close-delimited body: the end of the connection is the end of the body
        else:
            why = f"upstream closed the connection ({type(exc).__name__})" if exc else "upstream closed the connection"
            self._error(UpstreamClosed(why))

    def pause(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # -- httptools callbacks ----------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._names.append(name)
        self._values.append(value)

    def on_headers_complete(self) -> None:
        resp = self.resp
        assert resp is not None
        headers = LowerHeaders()
        for raw_name, raw_value in zip(self._names, self._values, strict=True):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self._names.clear()
        self._values.clear()
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self._interim = True
            return
        resp.status, resp.headers = status, headers
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            resp._decoder = zlib.decompressobj(47)  # 32 + 15: gzip or zlib wrapper, told apart by the header
        elif encoding not in ("identity", ""):
            self._error(UpstreamProtocolError(f"unsupported content-encoding {encoding!r}"))
            return
        resp._until_close = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "")
            and status not in (204, 304)
            and status >= 200
        )
        w = self._headers_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.resp is not None:
            self.resp._feed(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        resp = self.resp
        if resp is not None:
            if not self._parser.should_keep_alive():
                self.closed = True  # served its last answer; released, it will be closed, not pooled
            resp._finish()

    # -- exchanges --------------------------------------------------------------------------------
    def send(self, payload: bytes) -> UpstreamResponse:
        assert self.transport is not None
        self.resp = UpstreamResponse(self)
        self._headers_waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self.resp

    async def headers(self) -> None:
        w = self._headers_waiter
        assert w is not None
        try:
            await w
        finally:
            self._headers_waiter = None

    def _error(self, exc: BaseException) -> None:
        w = self._headers_waiter
        if w is not None and not w.done():
            w.set_exception(exc)
            w.exception()  # retrieved here: the awaiting request() raises it; no "never retrieved" warning
        if self.resp is not None:
            self.resp._fail(exc)
        self.abort()

    def done(self, *, reusable: bool) -> None:
        self.resp = None
        if reusable and not self.closed:
            self._release(self)
        else:
            self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
