"""Streams that survive a cut (per route, `resume_streams: true`; off by default), on every client API.

When a stream fails after content reached the client (cut, stall, mid-stream provider error), the failover loop
(dataplane/failover.py) runs again over the targets not tried yet, with a continuation of the original request:
the text already sent becomes the start of the assistant's answer. Anthropic and Gemini take it as a prefill
(a last assistant / model turn, which they continue natively); an OpenAI-compatible target gets it as an
assistant message followed by a user message asking to continue exactly where it stopped (`continuation_turns`;
each client API puts those turns into its own request shape). Only the continuation is streamed: its role
preamble is dropped, a leading blank is dropped when the text sent ended with one (Anthropic refuses a prefill
ending in whitespace, so it is sent trimmed), and its usage is reported as the usage of every part, summed. The
finish reason is the continuing target's.

Every stream is watched as chat chunks: a chat-shaped stream as it is, a provider's own events (a Responses or
Messages pass-through) through the client API's `ChatView` of them. So the `StreamTap` learns the text sent, the
tool calls and the finish from either, and a continuation reaches the client API's writer as chat chunks, which
it writes on in the client's event sequence (dataplane/api/pipeline.py `ClientStream.continued`). Chat chunks of a
continuation carry the first stream's id, created and model.

A stream that was emitting tool calls is not resumed: half a tool call cannot be continued as text. It ends
with the error event as before.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from adapters.base import StreamItem
from dataplane.api.settle import LiveReport, settle_stream
from dataplane.attempts import StreamEnd, UpstreamAttempt
from dataplane.deadlines import OUTPUT_SIZE_KEYS
from dataplane.failover import Answer, AttemptOutcome, Exhausted, LoopOptions, first_answer
from dataplane.selection import Candidate, Plan
from dataplane.state import DataPlaneState

__all__ = [
    "CONTINUE_INSTRUCTION",
    "PREFILL_ADAPTERS",
    "ChatView",
    "EventView",
    "Part",
    "Resumed",
    "StreamTap",
    "chat_item",
    "continuation_body",
    "remaining_output",
    "continuation_turns",
    "resume",
    "sum_usage",
    "parts_usage",
]

# Adapters whose APIs continue a last assistant turn natively (Anthropic Messages prefill, Gemini model turn).
PREFILL_ADAPTERS = frozenset({"anthropic", "gemini"})
CONTINUE_INSTRUCTION = (
    "Your previous answer was cut off. Continue it exactly from where it stopped: do not repeat any of it, "
    "do not comment, just write the rest."
)

# A provider's own stream item read as a chat chunk item (None: it carries nothing a chat chunk would).
ChatView = Callable[[StreamItem], StreamItem | None]


class EventView:
    """The shape of a `ChatView` over a provider's own events (one per stream): the end passes as it is, an item
    without an event carries nothing, and `read` says what an event means; tool calls are numbered in order."""

    def __init__(self) -> None:
        self._calls: dict[int, int] = {}  # the provider's index of a tool call's item or block → chat tool_calls index

    def __call__(self, item: StreamItem) -> StreamItem | None:
        if item.kind == "done":
            return item
        return self.read(item.chunk, item) if item.chunk is not None else None

    def read(self, doc: dict[str, Any], item: StreamItem) -> StreamItem | None:
        raise NotImplementedError

    def call_index(self, key: int) -> int:
        """The chat tool_calls index of the provider's tool call at `key` (a new one takes the next)."""
        return self._calls.setdefault(key, len(self._calls))


def chat_item(
    delta: dict[str, Any], *, finish: str | None = None, usage: dict[str, int] | None = None, content: bool = False
) -> StreamItem:
    """A chat chunk item with one choice's `delta` (what a `ChatView` makes of a provider's own event)."""
    chunk: dict[str, Any] = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        chunk["usage"] = usage
    return StreamItem("chunk", chunk=chunk, content=content, usage=usage, finish_reason=finish)


def continuation_turns(sent: str, adapter: str) -> list[dict[str, str]]:
    """The turns appended to a conversation to ask `adapter`'s target to continue the answer `sent` so far."""
    if adapter in PREFILL_ADAPTERS:
        return [{"role": "assistant", "content": sent.rstrip() if adapter == "anthropic" else sent}]
    return [{"role": "assistant", "content": sent}, {"role": "user", "content": CONTINUE_INSTRUCTION}]


def continuation_body(body: dict[str, Any], sent: str, adapter: str) -> dict[str, Any]:
    """The original OpenAI-shaped request asking `adapter`'s target to continue the answer `sent` so far."""
    return remaining_output(
        {**body, "messages": [*(body.get("messages") or []), *continuation_turns(sent, adapter)]}, sent
    )


def remaining_output(body: dict[str, Any], sent: str) -> dict[str, Any]:
    """`body` with its requested output size (`max_tokens`, `max_completion_tokens`, `max_output_tokens`) less
    what the answer `sent` so far has used, so the whole answer stays within what the client asked for. A cut
    stream rarely reports its usage, so that is estimated: one token per four characters (a stream whose budget
    was spent ended with a finish reason, and is not resumed), never below one token."""
    used = math.ceil(len(sent) / 4)
    out = dict(body)
    for key in OUTPUT_SIZE_KEYS:
        limit = body.get(key)
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            out[key] = max(1, limit - used)
    return out


def sum_usage(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """Two OpenAI-shaped usage objects added key by key (integers only); None when both are None."""
    if not a:
        return dict(b) if b else None
    if not b:
        return dict(a)
    out = dict(b)
    for k, v in a.items():
        if isinstance(v, int) and not isinstance(v, bool):
            w = out.get(k, 0)
            out[k] = v + (w if isinstance(w, int) and not isinstance(w, bool) else 0)
    return out


class StreamTap:
    """Watches (and, for a continuation, rewrites) a resumable stream's items before they are encoded for the
    client: what text was sent, whether tool calls were, and the usage of the parts before this one. `view` reads
    the current part's items as chat chunks (None: they are chat chunks)."""

    __slots__ = ("text", "tools", "finished", "ident", "earlier_usage", "continuing", "_trim", "_view")

    def __init__(self, view: ChatView | None = None) -> None:
        self.text: list[str] = []  # content sent to the client, in order
        self.tools = False  # a tool-call delta was sent: not resumable
        self.finished = False  # a finish reason was sent: the answer is complete, nothing to continue
        self.ident: tuple[Any, Any, Any] | None = None  # the first stream's (id, created, model)
        self.earlier_usage: dict[str, Any] | None = None  # summed usage of the parts before the current one
        self.continuing = False
        self._trim = False
        self._view = view

    @property
    def sent(self) -> str:
        return "".join(self.text)

    @property
    def resumable(self) -> bool:
        """Text reached the client, no tool call did, and the answer had not finished."""
        return bool(self.text) and not self.tools and not self.finished

    def continue_with(self, earlier_usage: dict[str, Any] | None, view: ChatView | None = None) -> None:
        """The next items come from a continuation (read through `view`), after parts whose usage was
        `earlier_usage`."""
        self.continuing = True
        self.earlier_usage = earlier_usage
        self._view = view
        sent = self.sent
        self._trim = bool(sent) and sent[-1].isspace()

    def __call__(self, item: StreamItem) -> StreamItem | None:
        if item.finish_reason is not None:
            self.finished = True
        seen = self._view(item) if self._view is not None else item
        if not self.continuing:
            chunk = seen.chunk if seen is not None else None
            if chunk is not None:
                if self.ident is None and "id" in chunk:
                    self.ident = (chunk.get("id"), chunk.get("created"), chunk.get("model"))
                self._see(chunk)
            return item  # the first part reaches the client as it came (its own events, when passed through)
        if seen is None or seen.kind == "keepalive":
            return None  # the continuation's preamble: the client has had one
        chunk = seen.chunk
        if seen.kind != "chunk" or chunk is None:
            return seen
        chunk = dict(chunk)
        if self.ident is not None:
            chunk["id"], chunk["created"], chunk["model"] = self.ident
        if self._trim:
            self._lstrip(chunk)
        if "usage" in chunk and chunk["usage"] is not None and self.earlier_usage:
            chunk["usage"] = sum_usage(self.earlier_usage, chunk["usage"])
        self._see(chunk)
        return StreamItem(
            "chunk",
            chunk=chunk,
            content=seen.content,
            usage=seen.usage,
            finish_reason=seen.finish_reason,
        )  # raw dropped: the chunk is re-serialised with the first stream's identity

    def _lstrip(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            text = delta.get("content")
            if isinstance(text, str) and text:
                stripped = text.lstrip()
                choice["delta"] = {**delta, "content": stripped}
                if stripped:
                    self._trim = False
            elif delta.get("tool_calls"):
                self._trim = False

    def _see(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            text = delta.get("content")
            if isinstance(text, str) and text:
                self.text.append(text)
            if delta.get("tool_calls"):
                self.tools = True


@dataclass(slots=True)
class Part:
    """One target's share of a (possibly resumed) stream, and how it ended."""

    cand: Candidate
    end: StreamEnd


def parts_usage(parts: Sequence[Part]) -> dict[str, Any] | None:
    """The usage of every part of a stream, summed."""
    usage: dict[str, Any] | None = None
    for p in parts:
        usage = sum_usage(usage, p.end.usage)
    return usage


class Resumed(Protocol):
    """What a client request carries that resuming its stream reads and extends (chat's and the pipeline's)."""

    plan: Plan
    tries: list[AttemptOutcome]  # every attempt in order: the continuations' are added
    notes: list[str]


# An attempt asking a candidate to continue the answer sent so far, bounded by the loop-time deadline.
StartWith = Callable[[Candidate, str, float], UpstreamAttempt]
Pump = Callable[[Answer], Awaitable[StreamEnd]]  # stream a continuation to the client (tapped, in its shape)


async def resume(
    st: DataPlaneState,
    req: Resumed,
    first: Part,
    tap: StreamTap,
    *,
    t0: float,
    start: StartWith,
    pump: Pump,
    view: Callable[[Candidate], ChatView | None] = lambda cand: None,
) -> list[Part]:
    """Continue a failed stream on the request's targets not tried yet, through the one failover loop, as long
    as each part fails resumably, a target is left and the request's total deadline (from `t0`) allows. Every
    attempt is observed and counted as any other (dataplane/api/settle.py). Returns every part, `first`
    included; the last one's end is how the client's stream ended (its error event, if any, is the caller's to
    send). `view` says how a continuing candidate's stream items read as chat chunks; `pump` streams a
    continuation through the tap; a client that goes away during one raises CancelledError, its attempt closed."""
    dp, route = st.rt.config.dataplane, req.plan.name
    remaining = dp.total_timeout - (st.rt.clock.monotonic() - t0)
    options = LoopOptions(max_attempts=dp.max_attempts, deadline=asyncio.get_running_loop().time() + remaining)
    report = LiveReport(st, route)
    if tap.resumable:
        report.failing_over(first.end.classification.error_class)
    parts = [first]
    while True:
        last = parts[-1].end
        if last.classification.ok or last.client_gone or not tap.resumable:
            return parts
        done = {t.target for t in req.tries}
        rest = [c for c in req.plan.candidates if c.target not in done]
        if not rest:
            return parts
        sent = tap.sent

        def start_continuation(cand: Candidate, sent: str = sent) -> UpstreamAttempt:
            return start(cand, sent, options.deadline)

        try:
            answer = await first_answer(rest, start_continuation, report, options, tried=req.tries, notes=req.notes)
        except Exhausted:
            return parts
        req.notes.append(
            f"resumed: {answer.cand.target} continues {parts[-1].cand.target}'s answer after {len(sent)} characters"
        )
        tap.continue_with(parts_usage(parts), view(answer.cand))
        try:
            end = await pump(answer)
        except asyncio.CancelledError:
            answer.attempt.close()
            raise
        settle_stream(st, route, req.tries, answer, end)
        parts.append(Part(answer.cand, end))
