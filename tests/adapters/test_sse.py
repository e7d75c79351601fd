"""SSE framing: events, comments, multi-line data, split reads, line endings, raw JSON blocks, size cap."""

from __future__ import annotations

import pytest

from adapters.sse import SSEEvent, SSEParser


def feed_all(parser: SSEParser, *parts: bytes) -> list[SSEEvent]:
    out: list[SSEEvent] = []
    for p in parts:
        out.extend(parser.feed(p))
    return out + parser.close()


def test_events_with_names_and_multi_line_data() -> None:
    evs = feed_all(SSEParser(), b'event: message_start\ndata: {"a":\ndata: 1}\n\n')
    assert [(e.kind, e.event, e.data) for e in evs] == [("event", "message_start", '{"a":\n1}')]
    assert evs[0].raw == b'event: message_start\ndata: {"a":\ndata: 1}\n\n'


@pytest.mark.parametrize("sep", [b"\n", b"\r\n", b"\r"])
def test_line_endings(sep: bytes) -> None:
    stream = b"data: one" + sep + sep + b": keep-alive" + sep + sep + b"data: two" + sep + sep
    evs = feed_all(SSEParser(), stream)
    assert [(e.kind, e.data or e.comment) for e in evs] == [
        ("event", "one"),
        ("comment", "keep-alive"),
        ("event", "two"),
    ]


def test_byte_by_byte_feeding_gives_the_same_events() -> None:
    stream = b'data: {"x": "\xc3\xa9"}\r\n\r\n: OPENROUTER PROCESSING\n\ndata: [DONE]\n\n'
    whole = feed_all(SSEParser(), stream)
    p = SSEParser()
    pieces = [stream[i : i + 1] for i in range(len(stream))]
    assert feed_all(p, *pieces) == whole
    assert whole[0].data == '{"x": "é"}'


def test_raw_multi_line_json_without_data_prefix_is_one_json_event() -> None:
    stream = b'data: {"a":1}\n\n{\n  "error": {\n    "code": 503,\n    "message": "The model is {overloaded}",\n    "status": "UNAVAILABLE"\n  }\n}\n'
    evs = feed_all(SSEParser(), stream)
    assert [e.kind for e in evs] == ["event", "json"]
    assert '"UNAVAILABLE"' in (evs[1].data or "")


def test_unterminated_json_block_is_flushed_on_close() -> None:
    evs = feed_all(SSEParser(), b'[{\n "error": {"code": 500')
    assert [e.kind for e in evs] == ["json"]


def test_last_event_without_blank_line_is_dispatched_on_close() -> None:
    evs = feed_all(SSEParser(), b"data: [DONE]")
    assert [(e.kind, e.data) for e in evs] == [("event", "[DONE]")]


def test_unknown_fields_are_ignored_and_id_is_kept_in_raw() -> None:
    evs = feed_all(SSEParser(), b"id: 7\nfoo: bar\ndata: x\n\n")
    assert evs[0].data == "x" and evs[0].raw == b"id: 7\ndata: x\n\n"


def test_oversized_line_becomes_one_overflow_event_then_nothing() -> None:
    p = SSEParser(max_event_bytes=1000)
    evs = p.feed(b"data: " + b"x" * 2000)
    assert [e.kind for e in evs] == ["overflow"]
    assert p.feed(b"\n\ndata: more\n\n") == [] and p.close() == []
