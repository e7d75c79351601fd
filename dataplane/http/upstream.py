"""Pooled keep-alive HTTP/1.1 connections for the data plane's upstream calls.

Why not aiohttp's ClientSession here: per request it builds a ClientRequest and a ClientResponse, runs timer
contexts, trace hooks and a cookie pass, and that costs more CPU than Turnout's routing, accounting and
metrics together (bench/dataplane). The data plane needs much less: one request on a reused connection, the
status, the headers, and the body as it arrives. This module does that on asyncio protocols with httptools
(the llhttp parser uvicorn uses). Probes and webhooks keep aiohttp, where per-call cost does not matter.

Covered: http and https (system trust store, SNI), Content-Length, chunked and close-delimited bodies, gzip and
deflate content encodings, idle connections reused per origin (most recent first) and dropped after
`idle_timeout`, back-pressure (a reader that falls behind pauses the socket), and one transparent retry on a new
connection when a reused one turns out to have been closed by the upstream before any byte of the answer (the
keep-alive race every pooled client has). Not covered, on purpose: redirects (a 3xx is an answer to classify),
proxies, HTTP/2.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import Mapping
from urllib.parse import urlsplit

import httptools

from adapters.headers import LowerHeaders
from adapters.transport_faults import BodyTooLarge, NotHTTP

__all__ = [
    "UpstreamPool",
    "UpstreamResponse",
    "UpstreamConnectError",
    "UpstreamClosed",
    "UpstreamProtocolError",
    "UpstreamBodyTooLarge",
]

_HIGH_WATER = 256 * 1024  # unread body bytes held before the socket is paused
_LOW_WATER = 64 * 1024
_URL_CACHE_MAX = 4096  # parsed upstream URLs kept (the set is small: one per provider/model/endpoint)
_HEAD_CACHE_MAX = 1024  # encoded header sets kept (one or two per provider)

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

    def __init__(self, conn: _Connection) -> None:
        self.status = 0
        self.headers: dict[str, str] = LowerHeaders()
        self._conn: _Connection | None = conn
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


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one answer in flight (no pipelining)."""

    def __init__(self, pool: UpstreamPool, origin: Origin) -> None:
        self._pool, self.origin = pool, origin
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
            self._pool._put(self)
        else:
            self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class UpstreamPool:
    """Keep-alive connections to every upstream origin, shared by all data-plane requests of one process."""

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        idle_timeout: float = 30.0,
        max_idle_per_origin: int = 256,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "turnout-dataplane",
    ) -> None:
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle_per_origin = max_idle_per_origin
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._urls: dict[str, tuple[Origin, bytes]] = {}  # url -> (origin, request-line target + host header)
        self._heads: dict[tuple[tuple[str, str], ...], bytes] = {}
        self._default_headers = f"user-agent: {user_agent}\r\naccept-encoding: gzip, deflate\r\n".encode()
        self._closed = False
        self._sweep_at: asyncio.TimerHandle | None = None  # the next pass that closes expired idle connections

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> UpstreamResponse:
        """Send one request; return once the status line and headers are in (the body streams after).

        Raises UpstreamConnectError (could not connect or send), UpstreamClosed (closed before the headers),
        UpstreamProtocolError (not HTTP). A caller's timeout or cancellation drops the connection.
        """
        if self._closed:
            raise UpstreamConnectError("the upstream pool is closed")
        origin, target = self._parse(url)
        payload = _encode(method, target, self._head(headers), body)
        for attempt in (1, 2):
            conn = self._take_idle(origin) or await self._connect(origin)
            resp = conn.send(payload)
            try:
                await conn.headers()
            except UpstreamClosed:
                if attempt == 1 and conn.reused and not resp.received:
                    continue  # the upstream had closed this idle connection as we reused it: once more, on a new one
                raise
            except BaseException:
                conn.abort()
                raise
            return resp
        raise AssertionError("unreachable")

    async def close(self) -> None:
        self._closed = True
        if self._sweep_at is not None:
            self._sweep_at.cancel()
            self._sweep_at = None
        for conns in self._idle.values():
            for conn in conns:
                conn.abort()
        self._idle.clear()

    # -- internals --------------------------------------------------------------------------------
    def _head(self, headers: Mapping[str, str]) -> bytes:
        """Encoded header lines, cached: a provider sends the same few headers (type, accept, key) every time."""
        key = tuple(headers.items())
        hit = self._heads.get(key)
        if hit is None:
            hit = _header_block(headers, self._default_headers)
            if len(self._heads) >= _HEAD_CACHE_MAX:
                self._heads.clear()
            self._heads[key] = hit
        return hit

    def _parse(self, url: str) -> tuple[Origin, bytes]:
        hit = self._urls.get(url)
        if hit is not None:
            return hit
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamConnectError(f"unsupported upstream URL scheme or host in {scheme}://{parts.hostname or ''}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise UpstreamConnectError(f"invalid port in upstream URL: {exc}") from exc
        host = parts.hostname
        default_port = port == (443 if scheme == "https" else 80)
        host_header = (f"[{host}]" if ":" in host else host) + ("" if default_port else f":{port}")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            target = f"{path} HTTP/1.1\r\nhost: {host_header}".encode("ascii", "strict")
        except UnicodeEncodeError as exc:
            raise UpstreamConnectError(
                "upstream URL has non-ASCII characters; percent-encode them in base_url"
            ) from exc
        hit = ((scheme, host, port), target)
        if len(self._urls) >= _URL_CACHE_MAX:
            self._urls.clear()
        self._urls[url] = hit
        return hit

    def _take_idle(self, origin: Origin) -> _Connection | None:
        conns = self._idle.get(origin)
        if not conns:
            return None
        now = asyncio.get_running_loop().time()
        while conns:
            conn = conns.pop()  # most recently used first: the rest age out instead of all staying half-warm
            if not conn.closed and now - conn.idle_since < self.idle_timeout:
                conn.reused = True
                return conn
            conn.abort()
        return None

    def _put(self, conn: _Connection) -> None:
        conns = self._idle.setdefault(conn.origin, [])
        if self._closed or len(conns) >= self.max_idle_per_origin:
            conn.abort()
            return
        loop = asyncio.get_running_loop()
        conn.idle_since = loop.time()
        conns.append(conn)
        if self._sweep_at is None:
            self._sweep_at = loop.call_later(self.idle_timeout, self._sweep)

    def _sweep(self) -> None:
        """Close the connections idle for `idle_timeout`, so a burst's connections do not stay open once traffic
        is back to normal (or gone). Each origin's list is oldest first: only its expired head is cut."""
        self._sweep_at = None
        loop = asyncio.get_running_loop()
        expired_before = loop.time() - self.idle_timeout
        oldest: float | None = None
        for conns in self._idle.values():
            n = 0
            while n < len(conns) and (conns[n].closed or conns[n].idle_since <= expired_before):
                conns[n].abort()
                n += 1
            del conns[:n]
            if conns and (oldest is None or conns[0].idle_since < oldest):
                oldest = conns[0].idle_since
        if oldest is not None and not self._closed:
            self._sweep_at = loop.call_at(oldest + self.idle_timeout, self._sweep)

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin), host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError as exc:
            raise UpstreamConnectError(f"connect timeout after {self.connect_timeout:g}s") from exc
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            raise UpstreamConnectError(f"{type(exc).__name__}: {exc}") from exc
        return conn


def _encode(method: str, target: bytes, head: bytes, body: bytes | None) -> bytes:
    size = len(body) if body else 0
    return (
        method.encode("ascii")
        + b" "
        + target
        + b"\r\n"
        + head
        + b"content-length: "
        + str(size).encode()
        + b"\r\n\r\n"
        + (body or b"")
    )


def _header_block(headers: Mapping[str, str], defaults: bytes) -> bytes:
    """The request's header lines (ours for framing, the defaults unless the caller set them), validated."""
    lines = []
    has = set()
    for name, value in headers.items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
            raise UpstreamConnectError(f"request header {name.split(chr(10))[0][:40]!r} contains a line break or colon")
        lname = name.lower()
        if lname in ("host", "content-length", "transfer-encoding", "connection"):
            continue  # framing headers are ours to write
        has.add(lname)
        lines.append(f"{name}: {value}\r\n")
    try:
        head = "".join(lines).encode("latin-1", "strict")
    except UnicodeEncodeError as exc:
        raise UpstreamConnectError(
            "a request header value is not latin-1 text (check the provider's key and headers)"
        ) from exc
    if "user-agent" in has or "accept-encoding" in has:
        defaults = b"".join(
            line + b"\r\n" for line in defaults.split(b"\r\n") if line and line.split(b":", 1)[0].decode() not in has
        )
    return defaults + head
