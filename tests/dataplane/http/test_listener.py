"""The data plane's HTTP/1.1 listener (dataplane/http/listener.py) on raw loopback sockets: framing, limits, refusals,
cancellation, back-pressure and shutdown. The data plane's own behaviour through it is covered by the SDK tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from dataplane.http.listener import MAX_HEADERS, Listener, start_listener
from dataplane.http.messages import App, Request, Response, StreamResponse


async def _echo(req: Request) -> Response:
    return Response(
        req.body, headers={"x-path": req.path, "x-query": req.query, "x-seen": req.headers.get("x-seen", "")}
    )


@pytest.fixture
async def served() -> AsyncIterator[tuple[Listener, dict[str, object]]]:
    state: dict[str, object] = {"cancelled": 0, "started": asyncio.Event(), "written": 0}
    app = App(max_body_bytes=1000)
    app.add_route("POST", "/echo", _echo)

    async def slow(req: Request) -> Response:
        state["started"].set()  # type: ignore[attr-defined]
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            state["cancelled"] = int(state["cancelled"]) + 1  # type: ignore[call-overload]
            raise
        return Response(b"never")

    async def fail(req: Request) -> Response:
        raise RuntimeError("a bug")

    async def sse(req: Request) -> StreamResponse:
        resp = StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(req)
        for i in range(int(req.query.partition("=")[2] or 3)):
            await resp.write(b"data: %d %b\n\n" % (i, b"x" * 1000))
            state["written"] = i + 1
        await resp.write_eof()
        return resp

    app.add_route("GET", "/slow", slow)
    app.add_route("GET", "/fail", fail)
    app.add_route("GET", "/sse", sse)
    listener = await start_listener(app, "127.0.0.1", 0, shutdown_timeout=1.0, keepalive_timeout=1.0)
    yield listener, state
    await listener.cleanup()


async def _exchange(port: int, data: bytes, *, read_until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(-1) if read_until_close else reader.read(65536), 10)
    finally:
        writer.close()


def _answers(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a stream of Content-Length answers."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        n = int(headers["content-length"])
        out.append((int(lines[0].split()[1]), headers, rest[:n]))
        raw = rest[n:]
    return out


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(
    served: tuple[Listener, dict[str, object]],
) -> None:
    listener, _ = served
    raw = await _exchange(
        listener.port,
        b"".join(
            b"POST /echo?n=%d HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nX-Seen: a\r\nx-seen: b\r\n%b\r\n%d"
            % (i, b"Connection: close\r\n" if i == 4 else b"", i)
            for i in range(5)
        ),
    )
    answers = _answers(raw)
    assert [a[2] for a in answers] == [b"0", b"1", b"2", b"3", b"4"]
    assert [a[1]["x-query"] for a in answers] == [f"n={i}" for i in range(5)]
    assert answers[0][1]["x-seen"] == "a, b"  # repeated fields joined, names case-insensitive
    assert answers[-1][1]["connection"] == "close" and "date" in answers[0][1]


async def test_http_1_0_gets_one_answer_and_a_close(served: tuple[Listener, dict[str, object]]) -> None:
    listener, _ = served
    [(status, headers, body)] = _answers(
        await _exchange(listener.port, b"POST /echo HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi")
    )
    assert status == 200 and body == b"hi" and headers["connection"] == "close"


async def test_a_chunked_request_body_is_read_whole(served: tuple[Listener, dict[str, object]]) -> None:
    listener, _ = served
    raw = await _exchange(
        listener.port,
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
    )
    assert _answers(raw)[0][2] == b"abcdefg"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_an_oversized_body_gets_413_before_the_client_has_sent_it_all(
    served: tuple[Listener, dict[str, object]], framing: str
) -> None:
    listener, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    if framing == "content-length":
        writer.write(b"POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n")
    else:
        writer.write(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(20):  # keeps sending after the refusal: the answer must still arrive (lingering close)
        writer.write(b"400\r\n" + b"x" * 1024 + b"\r\n" if framing == "chunked" else b"x" * 5000)
        await writer.drain()
    answer = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    status, _, body = _answers(answer)[0]
    assert status == 413 and b'"code":"request_too_large"' in body and b"1000 bytes" in body


async def test_expect_100_continue_is_answered_before_the_body(served: tuple[Listener, dict[str, object]]) -> None:
    listener, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"ok")
    assert _answers(await asyncio.wait_for(reader.read(-1), 5))[0][2] == b"ok"
    writer.close()


async def test_unknown_paths_and_methods_get_openai_shaped_404_and_405(
    served: tuple[Listener, dict[str, object]],
) -> None:
    listener, _ = served
    raw = await _exchange(listener.port, b"GET /nope HTTP/1.1\r\n\r\nGET /echo HTTP/1.1\r\nConnection: close\r\n\r\n")
    (s404, _, b404), (s405, h405, _) = _answers(raw)
    assert s404 == 404 and b'"code":"not_found"' in b404
    assert s405 == 405 and h405["allow"] == "POST"


async def test_a_handler_bug_is_a_500_and_the_connection_keeps_serving(
    served: tuple[Listener, dict[str, object]], caplog: pytest.LogCaptureFixture
) -> None:
    listener, _ = served
    with caplog.at_level(logging.ERROR, logger="turnout.dataplane.listener"):
        raw = await _exchange(
            listener.port,
            b"GET /fail HTTP/1.1\r\n\r\nPOST /echo HTTP/1.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nz",
        )
    (s500, _, body), (s200, _, echoed) = _answers(raw)
    assert s500 == 500 and b'"type":"server_error"' in body and s200 == 200 and echoed == b"z"
    assert any("a bug" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_a_client_that_disconnects_cancels_its_handler(served: tuple[Listener, dict[str, object]]) -> None:
    listener, state = served
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(b"GET /slow HTTP/1.1\r\n\r\n")
    await asyncio.wait_for(state["started"].wait(), 5)  # type: ignore[attr-defined]
    writer.close()
    for _ in range(100):
        if state["cancelled"]:
            break
        await asyncio.sleep(0.02)
    assert state["cancelled"] == 1


async def test_a_stream_is_chunked_and_waits_for_a_slow_reader(served: tuple[Listener, dict[str, object]]) -> None:
    listener, state = served
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    n = 30_000  # ~30 MB: far more than the socket buffers hold
    writer.write(b"GET /sse?n=%d HTTP/1.1\r\nConnection: close\r\n\r\n" % n)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b"transfer-encoding: chunked" in head
    for _ in range(50):  # the client reads nothing meanwhile: the handler must stop on drain, not buffer it all
        await asyncio.sleep(0.01)
    assert 0 < int(state["written"]) < n  # type: ignore[call-overload]
    body = await asyncio.wait_for(reader.read(-1), 30)
    writer.close()
    assert body.endswith(b"0\r\n\r\n") and body.count(b"data: ") == n
    assert int(state["written"]) == n  # type: ignore[call-overload]


async def test_an_oversized_header_is_refused_with_one_log_line_without_its_bytes(
    served: tuple[Listener, dict[str, object]], caplog: pytest.LogCaptureFixture
) -> None:
    listener, _ = served
    with caplog.at_level(logging.DEBUG, logger="turnout.dataplane.listener"):
        answer = await _exchange(
            listener.port, b"POST /echo HTTP/1.1\r\nAuthorization: Bearer sk-secret-token" + b"a" * 20_000 + b"\r\n\r\n"
        )
    assert answer.split()[1] == b"431" and b"sk-secret-token" not in answer
    records = [r for r in caplog.records if r.name == "turnout.dataplane.listener"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING and records[0].exc_info is None
    assert "sk-secret-token" not in records[0].getMessage()


async def test_too_many_headers_get_431_and_a_long_request_line_414(served: tuple[Listener, dict[str, object]]) -> None:
    listener, _ = served
    many = b"".join(b"X-%d: a\r\n" % i for i in range(MAX_HEADERS + 1))
    assert (await _exchange(listener.port, b"POST /echo HTTP/1.1\r\n" + many + b"\r\n")).split()[1] == b"431"
    assert (await _exchange(listener.port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")).split()[1] == b"414"
    assert (await _exchange(listener.port, b"NOT HTTP AT ALL\r\n\r\n")).split()[1] == b"400"


async def test_idle_connections_are_closed_after_the_keepalive_timeout(
    served: tuple[Listener, dict[str, object]],
) -> None:
    listener, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(b"POST /echo HTTP/1.1\r\nContent-Length: 1\r\n\r\nk")
    assert _answers(await asyncio.wait_for(reader.read(4096), 5))[0][2] == b"k"
    # keepalive_timeout is 1 s and the sweep runs every 0.5 s: the server closes the idle connection on its own
    assert await asyncio.wait_for(reader.read(-1), 5) == b""
    writer.close()


async def test_cleanup_lets_an_answer_in_flight_finish_then_runs_the_hooks() -> None:
    events: list[str] = []
    gate = asyncio.Event()
    app = App(max_body_bytes=100)

    async def held(req: Request) -> Response:
        events.append("handler started")
        await gate.wait()
        return Response(b"done")

    async def hook(_app: App) -> None:
        events.append("cleanup hook")

    app.add_route("GET", "/held", held)
    app.on_cleanup.append(hook)
    listener = await start_listener(app, "127.0.0.1", 0, shutdown_timeout=5.0)
    answer = asyncio.create_task(_exchange(listener.port, b"GET /held HTTP/1.1\r\nConnection: close\r\n\r\n"))
    while not events:
        await asyncio.sleep(0.01)
    stopping = asyncio.create_task(listener.cleanup())
    await asyncio.sleep(0.1)
    assert not stopping.done() and events == ["handler started"]  # waits for the answer in flight
    gate.set()
    assert _answers(await answer)[0][2] == b"done"
    await stopping
    assert events == ["handler started", "cleanup hook"]
