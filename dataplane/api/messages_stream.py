"""Writing a stream in the Anthropic Messages event sequence.

`ChatToMessages` turns the chat chunks of a translated target into `message_start`, `ping`,
`content_block_start` / `content_block_delta` (text_delta, input_json_delta) / `content_block_stop`,
`message_delta` (stop_reason, usage) and `message_stop`. `NativeMessages` forwards an Anthropic target's own
events. Both end a stream cut after content reached the client with Anthropic's `error` event, never with
`message_stop`.

A resumed stream (dataplane/resume.py) is written on by `continued()`: the same `ChatToMessages`, or for a native
stream one that carries on from what was forwarded (the message's id and model, the last content block and
whether it is open), so the client sees one message: the open text block continues, a new block takes the next
index, and one `message_delta` (the continuing target's stop reason, the summed usage) and `message_stop` end it.
`MessagesChatView` reads a native stream's events as chat chunks, for the tap and for a native continuation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapters.base import StreamItem
from adapters.wire.common import obj
from controlplane.domain import Classification
from dataplane.api.messages_translate import STOP_REASON, error_type, message_usage
from dataplane.api.responses_stream import sse_event
from dataplane.resume import EventView, chat_item

__all__ = ["ChatToMessages", "NativeMessages", "MessagesChatView", "error_event"]


def error_event(c: Classification) -> bytes:
    kind = error_type(c.status or 500, c.error_class)
    if kind == "invalid_request_error":  # a cut stream is never the caller's fault once it has started
        kind = "api_error"
    return sse_event(
        "error", {"type": "error", "error": {"type": kind, "message": c.detail or f"upstream {c.error_class}"}}
    )


class ChatToMessages:
    """Chat chunks → Messages events for one stream (a translated target)."""

    def __init__(self, *, mid: str, model: str) -> None:
        self._mid, self._model = mid, model
        self._started = False
        self._index = -1  # index of the open content block
        self._open: str | None = None  # "text" | "tool" (or a carried-on block's type) while a block is open
        self._calls: dict[int, int] = {}  # chat tool_calls index → content block index
        self._finish: str | None = None
        self._usage: Mapping[str, Any] | None = None

    @classmethod
    def carrying_on(cls, *, mid: str, model: str, index: int, open_block: str | None) -> ChatToMessages:
        """The writer that goes on with a stream whose events so far were another's: its message `mid`, its last
        content block `index`, and the type of that block while it is open."""
        w = cls(mid=mid, model=model)
        w._started, w._index, w._open = True, index, open_block
        return w

    def continued(self) -> ChatToMessages:
        return self

    def _start(self) -> list[bytes]:
        self._started = True
        message: dict[str, Any] = {
            "id": self._mid,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},  # chat hosts count input at the end: see message_delta
        }
        return [
            sse_event("message_start", {"type": "message_start", "message": message}),
            sse_event("ping", {"type": "ping"}),
        ]

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [sse_event("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _block(self, block: dict[str, Any], kind: str) -> list[bytes]:
        out = self._close()
        self._index += 1
        self._open = kind
        out.append(
            sse_event(
                "content_block_start", {"type": "content_block_start", "index": self._index, "content_block": block}
            )
        )
        return out

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _chunk(self, chunk: Mapping[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._open != "text":
                    out += self._block({"type": "text", "text": ""}, "text")
                out.append(self._delta(self._index, {"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or []:
                ci = int(call.get("index") or 0)
                fn = call.get("function") or {}
                if ci not in self._calls:
                    block = {
                        "type": "tool_use",
                        "id": str(call.get("id") or ""),
                        "name": str(fn.get("name") or ""),
                        "input": {},
                    }
                    out += self._block(block, "tool")
                    self._calls[ci] = self._index
                part = fn.get("arguments")
                if isinstance(part, str) and part:
                    out.append(self._delta(self._calls[ci], {"type": "input_json_delta", "partial_json": part}))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def _end(self) -> list[bytes]:
        out = self._close()
        usage = message_usage(self._usage)
        # A turn that called tools ends for them, whatever a host that streams the finish apart from the calls says.
        finish = "tool_calls" if self._calls and self._finish in (None, "stop") else self._finish
        out.append(
            sse_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": STOP_REASON.get(finish, "end_turn"), "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        out.append(sse_event("message_stop", {"type": "message_stop"}))
        return out

    def encode(self, items: Sequence[StreamItem]) -> bytes:
        out: list[bytes] = [] if self._started else self._start()
        for item in items:
            if item.kind == "chunk" and item.chunk is not None:
                out += self._chunk(item.chunk)
            elif item.kind == "done":
                out += self._end()
        return b"".join(out)

    def error(self, c: Classification) -> bytes:
        head = b"" if self._started else b"".join(self._start())
        return head + error_event(c)


class NativeMessages:
    """An Anthropic target's events, forwarded as they came. It keeps what the client has been told (the message,
    the last content block) so that a continuation can go on."""

    def __init__(self) -> None:
        self._message: dict[str, Any] = {}  # message_start's message
        self._index = -1  # the last content block's index
        self._open: str | None = None  # its type while it is open
        self._continued: ChatToMessages | None = None

    def encode(self, items: Sequence[StreamItem]) -> bytes:
        for item in items:
            doc = item.chunk
            if doc is None:
                continue
            kind = doc.get("type")
            if kind == "message_start" and isinstance(doc.get("message"), dict):
                self._message = doc["message"]
            elif kind == "content_block_start" and isinstance(doc.get("index"), int):
                block = doc.get("content_block")
                self._index = doc["index"]
                self._open = str(block.get("type") or "") if isinstance(block, dict) else ""
            elif kind == "content_block_stop":
                self._open = None
        return b"".join(item.raw for item in items if item.raw is not None)

    def continued(self) -> ChatToMessages:
        if self._continued is None:
            m = self._message
            self._continued = ChatToMessages.carrying_on(
                mid=str(m.get("id") or ""), model=str(m.get("model") or ""), index=self._index, open_block=self._open
            )
        return self._continued

    def error(self, c: Classification) -> bytes:
        return error_event(c)


class MessagesChatView(EventView):
    """An Anthropic stream's items read as chat chunks (dataplane/resume.py `ChatView`): text, thinking and
    tool-use deltas, and the end with its stop reason (as a chat finish reason) and usage."""

    def read(self, doc: dict[str, Any], item: StreamItem) -> StreamItem | None:
        kind, index = doc.get("type"), doc.get("index")
        at = index if isinstance(index, int) else 0
        if kind == "content_block_start":
            block = obj(doc.get("content_block"))
            if block.get("type") != "tool_use":
                return None
            fn = {"name": str(block.get("name") or ""), "arguments": ""}
            call = {"index": self.call_index(at), "id": str(block.get("id") or ""), "type": "function"}
            return chat_item({"tool_calls": [{**call, "function": fn}]}, content=True)
        if kind == "content_block_delta":
            d = obj(doc.get("delta"))
            dt = d.get("type")
            if dt == "text_delta":
                delta: dict[str, Any] = {"content": str(d.get("text") or "")}
            elif dt == "thinking_delta":
                delta = {"reasoning_content": str(d.get("thinking") or "")}
            elif dt == "input_json_delta":
                args = {"arguments": str(d.get("partial_json") or "")}
                delta = {"tool_calls": [{"index": self.call_index(at), "function": args}]}
            else:
                return None
            return chat_item(delta, content=item.content)
        if kind == "message_delta":
            return chat_item({}, finish=item.finish_reason, usage=item.usage)
        return None
