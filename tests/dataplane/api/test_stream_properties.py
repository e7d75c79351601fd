"""For every order of text pieces and tool-call deltas a chat stream may carry, the Responses and Messages
writers produce a well-formed event sequence: contiguous sequence numbers (Responses), every opened item or
block closed once, in order, the text and arguments exactly what was streamed, one clean end after `done`."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import StreamItem
from dataplane.api.messages_stream import ChatToMessages
from dataplane.api.responses_stream import ChatToResponses
from tests.dataplane.api.test_responses_translate import events

# A delta: ("text", piece) or ("tool", call index, argument piece); calls start in index order, as hosts send them.
_deltas = st.lists(
    st.one_of(
        st.tuples(st.just("text"), st.text(min_size=1, max_size=5)),
        st.tuples(st.just("tool"), st.integers(0, 2), st.text(max_size=4)),
    ),
    max_size=12,
)


def _chunks(deltas: list[tuple[Any, ...]]) -> tuple[list[StreamItem], str, dict[int, str]]:
    items: list[StreamItem] = []
    text = ""
    args: dict[int, str] = {}
    for d in deltas:
        if d[0] == "text":
            items.append(StreamItem("chunk", chunk={"choices": [{"delta": {"content": d[1]}}]}, content=True))
            text += d[1]
            continue
        idx = min(d[1], len(args))  # a new call gets the next index
        call: dict[str, Any] = {"index": idx, "function": {"arguments": d[2]}}
        if idx not in args:
            call.update(id=f"c{idx}", type="function")
            call["function"]["name"] = f"f{idx}"
            args[idx] = ""
        args[idx] += d[2]
        items.append(StreamItem("chunk", chunk={"choices": [{"delta": {"tool_calls": [call]}}]}, content=True))
    items.append(StreamItem("chunk", chunk={"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}))
    items.append(StreamItem("done"))
    return items, text, args


@settings(max_examples=60, deadline=None)
@given(_deltas, st.integers(1, 4))
def test_responses_events_are_well_formed_for_any_delta_order(deltas: list[tuple[Any, ...]], split: int) -> None:
    items, text, args = _chunks(deltas)
    w = ChatToResponses({"model": "r", "input": "x"}, rid="resp_1", model="m")
    data = b"".join(w.encode(items[i : i + split]) for i in range(0, len(items), split))
    evs = events(data)
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    kinds = [e["type"] for e in evs]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.count("response.completed") == 1
    added = [e["output_index"] for e in evs if e["type"] == "response.output_item.added"]
    done = [e["output_index"] for e in evs if e["type"] == "response.output_item.done"]
    assert sorted(added) == sorted(done) == list(range(len(added)))  # every item opened once and closed once
    final = evs[-1]["response"]
    streamed = "".join(e["delta"] for e in evs if e["type"] == "response.output_text.delta")
    assert streamed == text
    assert "".join(c["text"] for o in final["output"] if o["type"] == "message" for c in o["content"]) == text
    calls = [o for o in final["output"] if o["type"] == "function_call"]
    assert {c["call_id"]: c["arguments"] for c in calls} == {f"c{i}": a for i, a in args.items()}
    assert final["usage"]["output_tokens"] == 2


@settings(max_examples=60, deadline=None)
@given(_deltas, st.integers(1, 4))
def test_messages_events_are_well_formed_for_any_delta_order(deltas: list[tuple[Any, ...]], split: int) -> None:
    items, text, args = _chunks(deltas)
    w = ChatToMessages(mid="msg_1", model="m")
    data = b"".join(w.encode(items[i : i + split]) for i in range(0, len(items), split))
    evs = events(data)
    kinds = [e["type"] for e in evs]
    assert kinds[:2] == ["message_start", "ping"] and kinds[-2:] == ["message_delta", "message_stop"]
    open_: int | None = None
    seen: list[int] = []
    for e in evs:
        if e["type"] == "content_block_start":
            assert open_ is None  # one block at a time
            open_ = e["index"]
            seen.append(e["index"])
        elif e["type"] == "content_block_stop":
            assert e["index"] == open_
            open_ = None
    assert open_ is None and seen == list(range(len(seen)))
    streamed = "".join(e["delta"]["text"] for e in evs if e.get("delta", {}).get("type") == "text_delta")
    assert streamed == text
    stop = evs[-2]["delta"]["stop_reason"]
    assert stop == ("tool_use" if args else "end_turn")
