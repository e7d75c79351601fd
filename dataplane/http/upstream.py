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
proxies, HTTP/2. One connection and the answer read from it are dataplane/http/connection.py; this module is the
pool: origins, idle lists, connecting, and the request bytes.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

from dataplane.http.connection import (
    Origin,
    UpstreamBodyTooLarge,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamConnection,
    UpstreamProtocolError,
    UpstreamResponse,
)

__all__ = [
    "UpstreamPool",
    "UpstreamResponse",
    "UpstreamConnectError",
    "UpstreamClosed",
    "UpstreamProtocolError",
    "UpstreamBodyTooLarge",
]

_URL_CACHE_MAX = 4096  # parsed upstream URLs kept (the set is small: one per provider/model/endpoint)
_HEAD_CACHE_MAX = 1024  # encoded header sets kept (one or two per provider)


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
        self._idle: dict[Origin, list[UpstreamConnection]] = {}
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

    def _take_idle(self, origin: Origin) -> UpstreamConnection | None:
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

    def _put(self, conn: UpstreamConnection) -> None:
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

    async def _connect(self, origin: Origin) -> UpstreamConnection:
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
                    lambda: UpstreamConnection(self._put, origin),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
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
