"""For every answer cut after any of its pieces, and either kind of stream on either side of the cut (a provider's
own Responses / Messages events passed through, or chat chunks written in the client's events), a resumed
stream reads as one: one start, one end, contiguous sequence numbers (Responses), the open message item or text
block carried on rather than opened again, the text exactly the whole answer (a leading blank the continuer adds
after a prefill that was sent trimmed is dropped), the usage of both parts summed, the continuer's stop reason.
The native streams are what the real pass-through translators (adapters/native.py) read from a well-formed
upstream event stream."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import StreamItem
from adapters.native import NativeMessagesStream, NativeResponsesStream
from dataplane.api.messages_stream import ChatToMessages, MessagesChatView, NativeMessages
from dataplane.api.responses_stream import ChatToResponses, NativeResponses, ResponsesChatView
from dataplane.resume import StreamTap
from tests.dataplane.api.test_responses_translate import events

_pieces = st.lists(st.from_regex(r"[a-z,.]{1,4} ?", fullmatch=True), min_size=2, max_size=10)
_EARLIER = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}  # the cut part's usage
_LATER = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}  # the continuation's


def _text(piece: str) -> StreamItem:
    return StreamItem("chunk", chunk={"choices": [{"index": 0, "delta": {"content": piece}}]}, content=True)


def _answer(pieces: list[str], *, finish: bool) -> list[StreamItem]:
    role = StreamItem("keepalive", chunk={"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    items = [role, *map(_text, pieces)]
    if finish:
        items.append(StreamItem("chunk", chunk={"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        items.append(StreamItem("chunk", chunk={"choices": [], "usage": _LATER}, usage=_LATER))
        items.append(StreamItem("done"))
    return items


def _through(api: str, native: bool, items: list[StreamItem]) -> list[StreamItem]:
    """The items a target of that kind yields for this answer: chat chunks, or its own events as the pass-through
    translator reads them from the upstream's bytes."""
    if not native:
        return items
    if api == "responses":
        data = ChatToResponses({"model": "r", "input": "x"}, rid="resp_up", model="m").encode(items)
        return NativeResponsesStream().feed(data)
    data = ChatToMessages(mid="msg_up", model="m").encode(items)
    return NativeMessagesStream("m").feed(data)


def _stitch(api: str, first_native: bool, second_native: bool, pieces: list[str], cut: int, blank: bool) -> bytes:
    view = ResponsesChatView if api == "responses" else MessagesChatView
    writer: Any
    if api == "responses":
        writer = (
            NativeResponses() if first_native else ChatToResponses({"model": "r", "input": "x"}, rid="r1", model="m")
        )
    else:
        writer = NativeMessages() if first_native else ChatToMessages(mid="msg_1", model="m")
    tap = StreamTap(view() if first_native else None)
    out = writer.encode([x for x in map(tap, _through(api, first_native, _answer(pieces[:cut], finish=False))) if x])
    sent = "".join(pieces[:cut])
    assert tap.sent == sent and tap.resumable  # learnt from the provider's own events as from chat chunks
    rest = list(pieces[cut:])
    if blank and sent[-1] == " ":
        rest[0] = " " + rest[0]  # the continuer of a prefill sent trimmed starts with the blank it lost
    tap.continue_with(_EARLIER, view() if second_native else None)
    cont = writer.continued()
    assert writer.continued() is cont
    later = _through(api, second_native, _answer(rest, finish=True))
    return bytes(out + cont.encode([x for x in map(tap, later) if x]))


@settings(max_examples=80, deadline=None)
@given(_pieces, st.data(), st.booleans(), st.booleans(), st.booleans())
def test_a_resumed_responses_stream_is_one_response(
    pieces: list[str], data: st.DataObject, first_native: bool, second_native: bool, blank: bool
) -> None:
    cut = data.draw(st.integers(1, len(pieces) - 1))
    evs = events(_stitch("responses", first_native, second_native, pieces, cut, blank))
    kinds = [e["type"] for e in evs]
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    assert kinds.count("response.created") == 1 and kinds[0] == "response.created"
    assert kinds.count("response.completed") == 1 and kinds[-1] == "response.completed"
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 1
    assert kinds.count("response.content_part.added") == kinds.count("response.content_part.done") == 1
    whole = "".join(pieces)
    assert "".join(e["delta"] for e in evs if e["type"] == "response.output_text.delta") == whole
    final = evs[-1]["response"]
    assert final["id"] == evs[0]["response"]["id"] and final["status"] == "completed"
    [message] = final["output"]
    assert message["content"][0]["text"] == whole
    item_ids = {e["item_id"] for e in evs if "item_id" in e}
    assert item_ids == {message["id"]}  # the continuation writes into the item the client already has
    assert (final["usage"]["input_tokens"], final["usage"]["output_tokens"]) == (8, 5)


@settings(max_examples=80, deadline=None)
@given(_pieces, st.data(), st.booleans(), st.booleans(), st.booleans())
def test_a_resumed_messages_stream_is_one_message(
    pieces: list[str], data: st.DataObject, first_native: bool, second_native: bool, blank: bool
) -> None:
    cut = data.draw(st.integers(1, len(pieces) - 1))
    evs = events(_stitch("messages", first_native, second_native, pieces, cut, blank))
    kinds = [e["type"] for e in evs]
    assert kinds.count("message_start") == 1 and kinds[0] == "message_start"
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 1
    assert {e["index"] for e in evs if e["type"].startswith("content_block")} == {0}
    assert kinds[-2:] == ["message_delta", "message_stop"] and kinds.count("message_delta") == 1
    texts = [e["delta"]["text"] for e in evs if e["type"] == "content_block_delta"]
    assert "".join(texts) == "".join(pieces)
    end = evs[-2]
    assert end["delta"]["stop_reason"] == "end_turn"
    assert end["usage"] == {"input_tokens": 8, "output_tokens": 5}
