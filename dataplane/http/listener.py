"""The data plane's HTTP/1.1 listener: asyncio protocols and httptools (llhttp), no web framework.

Why not aiohttp's web server, which the control plane uses: per request it creates a task, a request object
graph, a stream writer and a response with multidict headers, and that cost about 40 µs of CPU per proxied
request here, more than Turnout's routing, accounting and metrics together (bench/dataplane). The data plane
needs little: a few routes, whole request bodies (chat requests are small and must be parsed whole anyway),
whole JSON answers and SSE streams. uvicorn was measured too: no cheaper than aiohttp.

Covered: keep-alive and pipelined requests (answered in order), HTTP/1.0, Content-Length and chunked request
bodies with a size limit (413), `Expect: 100-continue`, chunked streamed answers with back-pressure, a handler
cancelled when its client disconnects (nothing is then counted against a provider), idle connections closed
after `keepalive_timeout`, and oversized request heads refused the way HTTP says (431 for headers, 414 for the
request line) without quoting the client's bytes back — not in the answer, not in the log. Every refusal is
OpenAI's error shape. Not covered, on purpose: upgrades (WebSocket, h2c), HEAD, trailers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import httptools

from dataplane.http.messages import App, Request, Response, StreamResponse, encode_response, error_response

__all__ = ["Listener", "Connection", "start_listener", "MAX_LINE", "MAX_HEADERS"]

log = logging.getLogger("turnout.dataplane.listener")

MAX_LINE = 8190  # request line and each header field, as aiohttp's parser limits them
MAX_HEADERS = 128
_MAX_QUEUED = 8  # pipelined requests held per connection before reading pauses
_LINGER_S = 5.0  # how long a refused client may keep sending before the connection is closed
_MAX_HEAD = 64 * 1024  # bytes of an incomplete request head before it is refused (431)


class _Refused(Exception):
    """A request refused while it is read (head too large, body too large, malformed): answer, then close."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class Connection(asyncio.Protocol):
    """One client connection: parse requests, run their handlers one at a time, write the answers in order.
    A StreamResponse writes through `write()` and `drain()`."""

    def __init__(self, listener: Listener) -> None:
        self._listener, self._app = listener, listener.app
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._queue: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._refusal: _Refused | None = None  # a refused request (answered once the answers before it are)
        self._closed = False
        self._paused_reading = False
        self._writing_paused = False
        self._drain: asyncio.Future[None] | None = None
        self.last_active = 0.0
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: dict[str, str] = {}
        self._n_headers = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._in_head = False
        self._head_bytes = 0

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is not a subclass)
        self.last_active = self._listener.loop.time()
        self._listener.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._closed or self._refusal is not None:
            return
        self.last_active = self._listener.loop.time()
        try:
            self._parser.feed_data(data)
            if self._in_head:  # a head still incomplete: bound what it may grow to (httptools buffers it)
                self._head_bytes += len(data)
                if self._head_bytes > _MAX_HEAD:
                    raise _Refused(431, "request header fields too large", "headers_too_large")
        except _Refused as exc:
            self._refuse(exc)
        except httptools.HttpParserUpgrade:
            self._refuse(_Refused(400, "protocol upgrades are not supported", "bad_request"))
        except httptools.HttpParserError as exc:  # a _Refused raised in a callback comes back as its context
            refused = exc.__context__ if isinstance(exc.__context__, _Refused) else None
            self._refuse(refused or _Refused(400, "malformed HTTP request", "bad_request"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._listener.connections.discard(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()  # the client went away: its handler stops, nothing counts against a provider
        self._wake_writer()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_writer()

    # -- httptools callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._reset()
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_LINE:
            raise _Refused(414, "request line too long", "uri_too_long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._n_headers += 1
        if len(name) + len(value) > MAX_LINE or self._n_headers > MAX_HEADERS:
            raise _Refused(431, "request header fields too large", "headers_too_large")
        key, text = name.lower().decode("latin-1"), value.decode("latin-1")
        headers = self._headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        self._in_head = False
        headers = self._headers
        length = headers.get("content-length")
        limit = self._app.max_body_bytes()
        if length is not None and length.isdigit() and int(length) > limit:
            raise _Refused(413, f"request body exceeds {limit} bytes", "request_too_large")
        if self._task is None and self.transport is not None and headers.get("expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._app.max_body_bytes():
            raise _Refused(413, f"request body exceeds {self._app.max_body_bytes()} bytes", "request_too_large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        p = self._parser
        url = self._url
        if url.startswith(b"/") and b"?" not in url and b"%" not in url:
            path, query = url.decode("latin-1"), ""  # the common case, without a URL parse
        else:
            parsed = httptools.parse_url(url)
            path, query = (parsed.path or b"/").decode("latin-1"), (parsed.query or b"").decode("latin-1")
        http11 = p.get_http_version() == "1.1"
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        # HTTP/1.0 clients get one answer per connection (no keep-alive bookkeeping for a legacy protocol).
        self._queue.append(
            Request(
                self._app,
                p.get_method().decode("latin-1"),
                path,
                query,
                self._headers,
                body,
                self,
                http11 and p.should_keep_alive(),
                http11,
            )
        )
        if self._task is None:
            self._task = self._listener.loop.create_task(self._serve())
        elif len(self._queue) >= _MAX_QUEUED and self.transport is not None and not self._paused_reading:
            self._paused_reading = True  # a client pipelining faster than we answer: stop reading for now
            self.transport.pause_reading()

    # -- serving ----------------------------------------------------------------------------------
    async def _serve(self) -> None:
        try:
            while self._queue and not self._closed:
                req = self._queue.popleft()
                if self._paused_reading and len(self._queue) < _MAX_QUEUED // 2 and self.transport is not None:
                    self._paused_reading = False
                    self.transport.resume_reading()
                try:
                    await self._answer(req)
                except ConnectionError:  # the client left while its answer was written
                    self._close()
                    return
                except Exception:  # an answer that cannot be written (a bug): this connection's framing is lost
                    log.exception("data-plane answer to %s %s could not be written", req.method, req.path)
                    self._close()
                    return
                if not req._keep_alive:
                    self._close()
                    return
                self.last_active = self._listener.loop.time()
        finally:
            self._task = None
        if self._refusal is not None and not self._closed:  # a pipelined request refused while we answered
            self._refuse(self._refusal)

    async def _answer(self, req: Request) -> None:
        handler = self._app.handler_for(req.method, req.path)
        if handler is None:
            resp: Response | StreamResponse = self._no_route(req)
        else:
            try:
                resp = await handler(req)
            except (asyncio.CancelledError, ConnectionError):
                raise
            except Exception:
                log.exception("data-plane handler for %s %s failed", req.method, req.path)
                resp = error_response(500, "internal error in the data plane", "server_error", "internal_error")
        if isinstance(resp, StreamResponse):
            if not resp.prepared:  # a handler that gave up before its first byte: an empty answer
                await resp.prepare(req)
            await resp.write_eof()
        else:
            self.write(encode_response(resp, req._keep_alive))

    def _no_route(self, req: Request) -> Response:
        allowed = sorted(m for m, p in self._app.routes if p == req.path)
        if allowed:
            return error_response(
                405,
                f"method {req.method} not allowed on {req.path}",
                "invalid_request_error",
                "method_not_allowed",
                headers={"allow": ", ".join(allowed)},
            )
        return error_response(404, f"no such endpoint: {req.path}", "invalid_request_error", "not_found")

    def write(self, data: bytes) -> None:
        if self._closed or self.transport is None:
            raise ConnectionResetError("the client closed the connection")
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the client reads slower than we write (the transport's buffer is over its high-water mark)."""
        if self._writing_paused and not self._closed:
            self._drain = self._listener.loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None
        if self._closed:
            raise ConnectionResetError("the client closed the connection")

    def _wake_writer(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _refuse(self, exc: _Refused) -> None:
        """Answer a request that could not be read — without its bytes — and close the connection."""
        if self._task is not None:  # answers to earlier pipelined requests go first
            self._refusal = exc
            if self.transport is not None and not self._paused_reading:
                self._paused_reading = True
                self.transport.pause_reading()
            return
        # One line, never the refused bytes (a header may hold the caller's token). An oversized body is routine.
        log.log(
            logging.INFO if exc.status == 413 else logging.WARNING,
            "request from %s refused (HTTP %d: %s)",
            self._peer(),
            exc.status,
            exc,
        )
        self._refusal = exc  # from now on, whatever arrives is discarded
        if self.transport is None or self._closed:
            return
        self.transport.write(
            encode_response(error_response(exc.status, str(exc), "invalid_request_error", exc.code), False)
        )
        # Lingering close: a client still sending its body would get a reset instead of our answer if we closed
        # now. Say we are done, discard what still comes, and close when the client does (or after a while).
        if self.transport.can_write_eof():
            self.transport.write_eof()
            if self._paused_reading:
                self._paused_reading = False
                self.transport.resume_reading()
            self._listener.loop.call_later(_LINGER_S, self._close)
        else:
            self._close()

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"

    def _close(self) -> None:
        if not self._closed and self.transport is not None:
            self._closed = True
            self.transport.close()

    def idle_for(self, now: float) -> float:
        """Seconds without a request being read or answered (0 while a handler runs)."""
        return 0.0 if self._task is not None else now - self.last_active

    def close_idle(self) -> None:
        if self._task is None:
            self._close()


class Listener:
    """A running listener: `port`, and `cleanup()` to stop (what `start_listener` returns)."""

    def __init__(
        self, app: App, loop: asyncio.AbstractEventLoop, keepalive_timeout: float, shutdown_timeout: float
    ) -> None:
        self.app, self.loop, self.keepalive_timeout, self.shutdown_timeout = (
            app,
            loop,
            keepalive_timeout,
            shutdown_timeout,
        )
        self.connections: set[Connection] = set()
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def _sweep(self) -> None:
        """Close connections idle longer than keepalive_timeout (also a head that never completes)."""
        while True:
            await asyncio.sleep(min(1.0, self.keepalive_timeout / 2))
            now = self.loop.time()
            for conn in [c for c in self.connections if c.idle_for(now) > self.keepalive_timeout]:
                conn.close_idle()

    async def cleanup(self, grace: float | None = None) -> None:
        """Stop accepting, let answers in flight finish (up to `grace` seconds, default `shutdown_timeout`), then
        run the app's cleanup hooks."""
        grace = self.shutdown_timeout if grace is None else grace
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        deadline = self.loop.time() + grace
        while True:
            for conn in list(self.connections):
                conn.close_idle()
            if not self.connections or self.loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        for conn in list(self.connections):  # still busy after the grace period: cut
            if conn.transport is not None:
                conn.transport.abort()
        for hook in self.app.on_cleanup:
            await hook(self.app)


async def start_listener(
    app: App,
    host: str,
    port: int,
    *,
    shutdown_timeout: float = 60.0,
    keepalive_timeout: float = 75.0,
    backlog: int = 1024,
) -> Listener:
    """Run the app's startup hooks and listen on host:port (port 0: any free port, see `Listener.port`).

    The backlog is large because clients open many connections at once (a burst of streams), and a full one makes
    the kernel drop SYNs, which clients retry only after a second."""
    loop = asyncio.get_running_loop()
    listener = Listener(app, loop, keepalive_timeout, shutdown_timeout)
    for hook in app.on_startup:
        await hook(app)
    listener._server = await loop.create_server(lambda: Connection(listener), host, port, backlog=backlog)
    sock = listener._server.sockets[0] if listener._server.sockets else None
    listener.port = sock.getsockname()[1] if sock is not None else port
    listener._sweeper = loop.create_task(listener._sweep())
    return listener
