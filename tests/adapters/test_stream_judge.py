"""One stream judge: the completion probe (adapters/calls.py) and live traffic (dataplane/attempts.py) read the
same upstream bytes and must give them the same class. A raw loopback server replays a table of byte streams
(clean, empty with a finish reason, done before any chunk, cut mid-stream, error events, garbage) to both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from adapters.base import StreamItem
from adapters.registry import get_adapter
from adapters.stream_judge import StreamJudge
from controlplane.clock import SystemClock
from controlplane.domain import Classification
from controlplane.domain import ErrorClass as E
from dataplane.attempts import Timeouts, UpstreamAttempt
from dataplane.http.upstream import UpstreamPool
from dataplane.selection import Candidate
from tests.adapters.conftest import provider

pytestmark = pytest.mark.integration


def oa(delta: dict[str, object] | None = None, finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    doc: dict[str, object] = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    doc["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    if usage is not None:
        doc["usage"] = usage
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def an(kind: str, **fields: object) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **fields}) + b"\n\n"


DONE = b"data: [DONE]\n\n"
USAGE = oa(usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4})
_MSG = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "m",
    "content": [],
    "usage": {"input_tokens": 3},
}

# name: (adapter, events, how the body ends: "eof" = clean chunked end, "cut" = connection reset, expected class)
STREAMS: dict[str, tuple[str, list[bytes], str, E]] = {
    "clean": ("openai", [oa({"role": "assistant"}), oa({"content": "hi"}), oa({}, "stop"), USAGE, DONE], "eof", E.OK),
    "empty with finish": ("openai", [oa({"role": "assistant"}), oa({}, "length"), USAGE, DONE], "eof", E.OK),
    "empty string content with finish": ("openai", [oa({"content": ""}, "stop"), DONE], "eof", E.OK),
    "done before any chunk": ("openai", [DONE], "eof", E.BAD_RESPONSE),
    "role only then done": ("openai", [oa({"role": "assistant"}), DONE], "eof", E.BAD_RESPONSE),
    "usage only then done": ("openai", [oa({"role": "assistant"}), USAGE, DONE], "eof", E.BAD_RESPONSE),
    "no terminator": ("openai", [oa({"content": "a"}), oa({"content": "b"})], "eof", E.BAD_RESPONSE),
    "closed before anything": ("openai", [], "eof", E.BAD_RESPONSE),
    "cut mid-stream": ("openai", [oa({"content": "a"}), b'data: {"choices":[{"delta":'], "cut", E.BAD_RESPONSE),
    "cut before any chunk": ("openai", [b": keep-alive\n\n"], "cut", E.BAD_RESPONSE),
    "error event after content": (
        "openai",
        [oa({"content": "a"}), b'data: {"error":{"message":"boom","type":"server_error","code":null}}\n\n'],
        "eof",
        E.SERVER_ERROR,
    ),
    "error event first": (
        "openai",
        [b'data: {"error":{"message":"busy","type":"service_unavailable_error","code":"server_is_overloaded"}}\n\n'],
        "eof",
        E.OVERLOADED,
    ),
    "garbage json": ("openai", [b'data: {"choices":[{"delta":{"content":"ab\n\n', DONE], "eof", E.BAD_RESPONSE),
    "garbage bytes": ("openai", [b"\x00\xff\xfe not sse at all \x01\n\n"], "eof", E.BAD_RESPONSE),
    "anthropic clean": (
        "anthropic",
        [
            an("message_start", message=_MSG),
            an("content_block_start", index=0, content_block={"type": "text", "text": ""}),
            an("content_block_delta", index=0, delta={"type": "text_delta", "text": "hi"}),
            an("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 1}),
            an("message_stop"),
        ],
        "eof",
        E.OK,
    ),
    "anthropic finish without content": (
        "anthropic",
        [
            an("message_start", message=_MSG),
            an("message_delta", delta={"stop_reason": "max_tokens"}, usage={"output_tokens": 1}),
            an("message_stop"),
        ],
        "eof",
        E.OK,
    ),
    "anthropic stop before anything": (
        "anthropic",
        [an("message_start", message=_MSG), an("message_stop")],
        "eof",
        E.BAD_RESPONSE,
    ),
    "anthropic overloaded mid-stream": (
        "anthropic",
        [
            an("message_start", message=_MSG),
            an("ping"),
            an("content_block_delta", index=0, delta={"type": "text_delta", "text": "hi"}),
            an("error", error={"type": "overloaded_error", "message": "Overloaded"}),
        ],
        "eof",
        E.OVERLOADED,
    ),
}


@pytest.fixture
async def replay() -> AsyncIterator[dict[str, tuple[list[bytes], str]]]:
    """A raw HTTP/1.1 server on loopback answering every request with `script["now"]`'s bytes, byte for byte."""
    script: dict[str, tuple[list[bytes], str]] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
            0,
        )
        await reader.readexactly(length)
        events, end = script["now"]
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
            b"connection: close\r\n\r\n"
        )
        for e in events:
            writer.write(b"%x\r\n%b\r\n" % (len(e), e))
            await writer.drain()
        if end == "cut":
            writer.transport.abort()  # RST in the middle of the chunked body
            return
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    script["port"] = ([], str(server.sockets[0].getsockname()[1]))
    yield script
    server.close()
    await server.wait_closed()


async def _probe(adapter: str, base: str) -> Classification:
    async with aiohttp.ClientSession() as session:
        result = await get_adapter(adapter).probe_completion(
            session, provider(adapter, base), "m", prompt="x", max_tokens=1, timeout=5
        )
    return result.classification


async def _live(adapter: str, base: str) -> Classification:
    prov = provider(adapter, base)
    cand = Candidate(target=f"{prov.id}/m", provider=prov, model="m", adapter=adapter)
    pool = UpstreamPool(connect_timeout=2)
    loop = asyncio.get_running_loop()
    att = UpstreamAttempt(
        pool,
        get_adapter(adapter),
        cand,
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True},
        stream=True,
        timeouts=Timeouts(connect=2, first_byte=5, stall=5),
        clock=SystemClock(),
        deadline=loop.time() + 10,
    )
    sent: list[bytes] = []

    async def emit(data: bytes) -> None:
        sent.append(data)

    try:
        opened = await att.open()
        if not opened.ok:
            assert not sent  # a stream judged bad before its commit reaches no client: it can fail over
            return opened.classification
        end = await att.pump(emit, opened.buffered)
        return end.classification
    finally:
        att.close()
        await pool.close()


@pytest.mark.parametrize("name", list(STREAMS))
async def test_probe_and_live_traffic_give_the_same_stream_the_same_class(
    replay: dict[str, tuple[list[bytes], str]], name: str
) -> None:
    adapter, events, end, expected = STREAMS[name]
    replay["now"] = (events, end)
    port = replay["port"][1]
    base = f"http://127.0.0.1:{port}/v1" if adapter == "openai" else f"http://127.0.0.1:{port}"
    probed = await _probe(adapter, base)
    live = await _live(adapter, base)
    assert probed.error_class is expected, (name, probed)
    assert live.error_class is expected, (name, live)
    assert probed.code == live.code, (name, probed, live)


def test_a_finish_reason_without_content_is_an_answer_and_usage_alone_is_not() -> None:
    class Items:
        def __init__(self, *items: StreamItem) -> None:
            self.items = list(items)

        def feed(self, data: bytes) -> list[StreamItem]:
            out, self.items = self.items, []
            return out

        def close(self) -> list[StreamItem]:
            return []

    finished = StreamJudge(Items(StreamItem("chunk", finish_reason="length"), StreamItem("done")), status=200)
    assert finished.feed(b"x")[-1].kind == "done" and finished.answered
    assert finished.verdict is not None and finished.verdict.error_class is E.OK
    usage_only = StreamJudge(Items(StreamItem("chunk", usage={"completion_tokens": 1}), StreamItem("done")))
    assert [i.kind for i in usage_only.feed(b"x")] == ["chunk"] and not usage_only.answered  # [DONE] not forwarded
    assert usage_only.verdict is not None and usage_only.verdict.code == "empty_completion"
    silent = StreamJudge(Items())
    assert silent.feed(b"x") == [] and silent.verdict is None
    silent.close()
    assert silent.verdict is not None and silent.verdict.code == "truncated"  # never ok without a terminator


def test_a_translator_that_raises_is_a_bad_response_not_a_crash() -> None:
    class Broken:
        def feed(self, data: bytes) -> list[StreamItem]:
            raise KeyError("choices")

        def close(self) -> list[StreamItem]:
            raise KeyError("choices")

    judge = StreamJudge(Broken(), status=200)
    assert judge.feed(b"data: {}\n\n") == []
    assert judge.verdict is not None and judge.verdict.error_class is E.BAD_RESPONSE
    assert StreamJudge(Broken()).close() == []
