"""The data plane's pooled HTTP/1.1 transport against real loopback servers that misbehave on purpose.

Each server is a raw asyncio socket server, so a test controls every byte: framing (length, chunked,
close-delimited), encodings, resets mid-body, garbage, and the keep-alive race where the upstream closes an idle
connection just as it is reused.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from dataplane.http.upstream import (
    UpstreamBodyTooLarge,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamPool,
    UpstreamProtocolError,
)
from tests.support import free_port, until

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A loopback TCP server whose handler writes raw bytes; counts connections and requests."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler, self.ssl_context = handler, ssl_context
        self.connections = 0
        self.closed = 0  # connections that have ended (the client closed them, or the handler finished)
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> RawServer:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass
            finally:
                writer.close()
                self.closed += 1

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    def url(self, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}/v1/chat/completions"

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
        )
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        return head + body


def answer(body: bytes, *, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 "
        + status.encode()
        + b"\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"\r\n"
        + body
    )


def keep_answering(body: bytes, **kw: object) -> Callable[[RawServer], Handler]:
    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await server.read_request(reader)
                writer.write(answer(body, **kw))  # type: ignore[arg-type]
                await writer.drain()

        return handler

    return make


async def serve(make: Callable[[RawServer], Handler], ssl_context: ssl.SSLContext | None = None) -> RawServer:
    server = RawServer(lambda r, w: asyncio.sleep(0), ssl_context)
    server.handler = make(server)
    return await server.__aenter__()


async def post(
    pool: UpstreamPool, url: str, body: bytes = b'{"x":1}', **headers: str
) -> tuple[int, dict[str, str], bytes]:
    resp = await pool.request("POST", url, {"content-type": "application/json", **headers}, body)
    data = await resp.read(1 << 20)
    resp.release()
    return resp.status, resp.headers, data


async def test_keep_alive_connection_is_reused_and_request_is_well_formed() -> None:
    server = await serve(keep_answering(b'{"ok":true}'))
    pool = UpstreamPool()
    try:
        for _ in range(3):
            status, headers, data = await post(pool, server.url(), b'{"hello":"world"}', Authorization="Bearer k")
            assert (status, data) == (200, b'{"ok":true}') and headers["content-type"] == "application/json"
        assert server.connections == 1  # one connection carried all three
        req = server.requests[0]
        assert req.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert f"host: 127.0.0.1:{server.port}\r\n".encode() in req and b"content-length: 17\r\n" in req
        assert b"Authorization: Bearer k\r\n" in req and req.endswith(b'\r\n\r\n{"hello":"world"}')
    finally:
        await pool.close()
        await server.__aexit__()


async def test_chunked_stream_arrives_piece_by_piece() -> None:
    sent = asyncio.Queue[bytes]()

    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            for part in (b"data: 1\n\n", b"data: 2\n\n"):
                writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                await writer.drain()
                await sent.get()  # the next piece only after the client has read this one
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            await reader.read()  # keep the connection open: the pool may reuse it

        return handler

    server = await serve(make)
    pool = UpstreamPool()
    try:
        resp = await pool.request("POST", server.url(), {}, b"{}")
        assert resp.status == 200 and resp.headers["transfer-encoding"] == "chunked"
        assert await resp.readany() == b"data: 1\n\n"
        sent.put_nowait(b"")
        assert await resp.readany() == b"data: 2\n\n"
        sent.put_nowait(b"")
        assert await resp.readany() == b""
        resp.release()
        assert sum(len(c) for c in pool._idle.values()) == 1  # read to its end: back in the pool
    finally:
        await pool.close()
        await server.__aexit__()


async def test_interim_answers_are_skipped() -> None:
    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await server.read_request(reader)
                writer.write(
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n" + answer(b'{"ok":1}')
                )
                await writer.drain()

        return handler

    server = await serve(make)
    pool = UpstreamPool()
    try:
        for _ in range(2):  # and the connection stays usable
            status, headers, data = await post(pool, server.url())
            assert (status, data) == (200, b'{"ok":1}') and "link" not in headers
        assert server.connections == 1
    finally:
        await pool.close()
        await server.__aexit__()


async def test_close_delimited_body_ends_with_the_connection() -> None:
    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"a":')
            await writer.drain()
            writer.write(b"1}")
            await writer.drain()

        return handler

    server = await serve(make)
    pool = UpstreamPool()
    try:
        assert (await post(pool, server.url()))[2] == b'{"a":1}'
        assert not any(pool._idle.values())  # connection: close is never pooled
    finally:
        await pool.close()
        await server.__aexit__()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_bodies_are_decoded(encoding: str) -> None:
    import zlib

    payload = b'{"choices":[]}' * 50
    packed = gzip.compress(payload) if encoding == "gzip" else zlib.compress(payload)
    server = await serve(keep_answering(packed, extra=f"content-encoding: {encoding}\r\n".encode()))
    pool = UpstreamPool()
    try:
        assert (await post(pool, server.url()))[2] == payload
        assert b"accept-encoding: gzip, deflate\r\n" in server.requests[0]
    finally:
        await pool.close()
        await server.__aexit__()


async def test_unknown_encoding_and_garbage_are_protocol_errors() -> None:
    server = await serve(keep_answering(b"xx", extra=b"content-encoding: br\r\n"))
    pool = UpstreamPool()
    try:
        with pytest.raises(UpstreamProtocolError, match="content-encoding 'br'"):
            await post(pool, server.url())
    finally:
        await server.__aexit__()

    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b"<html>this is not HTTP</html>\r\n\r\n")
            await writer.drain()
            await reader.read()

        return handler

    server = await serve(make)
    try:
        with pytest.raises(UpstreamProtocolError, match="malformed HTTP answer"):
            await post(pool, server.url())
    finally:
        await pool.close()
        await server.__aexit__()


async def test_body_cut_short_raises_and_never_returns_to_the_pool() -> None:
    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial":')
            await writer.drain()

        return handler

    server = await serve(make)
    pool = UpstreamPool()
    try:
        resp = await pool.request("POST", server.url(), {}, b"{}")
        with pytest.raises(UpstreamClosed):
            await resp.read(1 << 20)
        resp.release()
        assert not any(pool._idle.values())
    finally:
        await pool.close()
        await server.__aexit__()


async def test_body_over_the_limit_is_refused() -> None:
    server = await serve(keep_answering(b"x" * 5000))
    pool = UpstreamPool()
    try:
        resp = await pool.request("POST", server.url(), {}, b"{}")
        with pytest.raises(UpstreamBodyTooLarge):
            await resp.read(1000)
        resp.close()
        resp2 = await pool.request("POST", server.url(), {}, b"{}")
        assert await resp2.read_prefix(1000) == b"x" * 1000  # an error page needs no more than its start
        resp2.close()
        assert (await post(pool, server.url()))[2] == b"x" * 5000
    finally:
        await pool.close()
        await server.__aexit__()


async def test_idle_connections_are_closed_after_the_idle_timeout_without_traffic() -> None:
    server = await serve(keep_answering(b"{}"))
    pool = UpstreamPool(idle_timeout=0.2)
    try:
        assert [r[0] for r in await asyncio.gather(*(post(pool, server.url()) for _ in range(3)))] == [200] * 3
        assert server.connections == 3 and server.closed == 0  # a burst of three: three idle connections kept
        await until(lambda: server.closed == 3, 10, "the pool closing its idle connections")
        assert (await post(pool, server.url()))[0] == 200 and server.connections == 4  # a new one when needed again
    finally:
        await pool.close()
        await server.__aexit__()


async def test_idle_connection_closed_by_upstream_is_retried_once_on_a_new_one() -> None:
    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(answer(b"{}"))  # keep-alive promised …
            await writer.drain()
            await server.read_request(reader)  # … but the next request on this connection is dropped unanswered

        return handler

    server = await serve(make)
    pool = UpstreamPool()
    try:
        assert (await post(pool, server.url()))[0] == 200
        assert (await post(pool, server.url()))[0] == 200  # the stale connection was replaced transparently
        assert server.connections == 2 and len(server.requests) == 3
    finally:
        await pool.close()
        await server.__aexit__()


async def test_fresh_connection_closed_before_an_answer_is_not_retried() -> None:
    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)

        return handler

    server = await serve(make)
    pool = UpstreamPool()
    try:
        with pytest.raises(UpstreamClosed):
            await post(pool, server.url())
        assert server.connections == 1  # a new connection that dies is the upstream's answer, not a race
    finally:
        await pool.close()
        await server.__aexit__()


async def test_refused_connection_and_bad_requests_are_connect_errors() -> None:
    pool = UpstreamPool(connect_timeout=2)
    try:
        with pytest.raises(UpstreamConnectError):
            await post(pool, f"http://127.0.0.1:{free_port()}/v1/chat/completions")
        with pytest.raises(UpstreamConnectError, match="line break"):
            await post(pool, "http://127.0.0.1:9/v1", Authorization="Bearer k\r\nX-Injected: 1")
        with pytest.raises(UpstreamConnectError, match="scheme"):
            await post(pool, "ftp://127.0.0.1/v1")
    finally:
        await pool.close()


async def test_a_cancelled_request_drops_its_connection() -> None:
    received = asyncio.Event()

    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            received.set()
            await reader.read()  # never answers; sees EOF when the client drops the connection

        return handler

    server = await serve(make)
    pool = UpstreamPool()
    try:
        task = asyncio.create_task(post(pool, server.url()))
        await received.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not any(pool._idle.values())
    finally:
        await pool.close()
        await server.__aexit__()


async def test_a_reader_that_falls_behind_pauses_the_socket_and_loses_nothing() -> None:
    big = bytes(range(256)) * 8192  # 2 MiB

    server = await serve(keep_answering(big))
    pool = UpstreamPool()
    try:
        resp = await pool.request("POST", server.url(), {}, b"{}")
        conn = resp._conn
        assert conn is not None and conn.transport is not None
        for _ in range(100_000):  # let the socket fill our buffer without reading it
            if resp._paused:
                break
            await asyncio.sleep(0)
        assert resp._paused and not conn.transport.is_reading()
        assert await resp.read(len(big)) == big
        resp.release()
    finally:
        await pool.close()
        await server.__aexit__()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not installed (Debian package openssl): cannot make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_with_a_trusted_certificate_and_a_refused_untrusted_one(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server = await serve(keep_answering(b'{"tls":true}'), server_ctx)
    trusting = UpstreamPool(ssl_context=ssl.create_default_context(cafile=str(cert)))
    system = UpstreamPool()  # the system trust store does not know our self-signed certificate
    try:
        assert (await post(trusting, server.url("https", "localhost")))[2] == b'{"tls":true}'
        assert b"host: localhost:" in server.requests[0]
        with pytest.raises(UpstreamConnectError, match="SSL"):
            await post(system, server.url("https", "localhost"))
    finally:
        await trusting.close()
        await system.close()
        await server.__aexit__()
