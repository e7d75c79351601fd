"""Streams that survive a cut (per route, `resume_streams: true`; off by default).

When a stream fails after content reached the client (cut, stall, mid-stream provider error), the failover loop
(dataplane/failover.py) runs again over the targets not tried yet, with a continuation of the original request:
the text already sent becomes the start of the assistant's answer. Anthropic and Gemini take it as a prefill
(a last assistant / model turn, which they continue natively); an OpenAI-compatible target gets it as an
assistant message followed by a user message asking to continue exactly where it stopped. Only the
continuation is streamed, in the same chunk format: the continuing stream's role preamble is dropped, its
chunks carry the first stream's id, created and model, and a leading blank is dropped when the text sent ended
with one (Anthropic refuses a prefill ending in whitespace, so it is sent trimmed). The finish reason is the
continuing target's; the usage chunk reports the usage of every part, summed.

A stream that was emitting tool calls is not resumed: half a tool call cannot be continued as text. It ends
with the error event as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.base import StreamItem
from dataplane.attempts import StreamEnd, UpstreamAttempt
from dataplane.failover import Answer, AttemptOutcome, Exhausted, LoopOptions, Report, first_answer
from dataplane.selection import Candidate

__all__ = [
    "CONTINUE_INSTRUCTION",
    "PREFILL_ADAPTERS",
    "Part",
    "StreamTap",
    "continuation_body",
    "continue_stream",
    "sum_usage",
]

# Adapters whose APIs continue a last assistant turn natively (Anthropic Messages prefill, Gemini model turn).
PREFILL_ADAPTERS = frozenset({"anthropic", "gemini"})
CONTINUE_INSTRUCTION = (
    "Your previous answer was cut off. Continue it exactly from where it stopped: do not repeat any of it, "
    "do not comment, just write the rest."
)


def continuation_body(body: dict[str, Any], sent: str, adapter: str) -> dict[str, Any]:
    """The original OpenAI-shaped request asking `adapter`'s target to continue the answer `sent` so far."""
    messages = list(body.get("messages") or [])
    if adapter in PREFILL_ADAPTERS:
        messages.append({"role": "assistant", "content": sent.rstrip() if adapter == "anthropic" else sent})
    else:
        messages.append({"role": "assistant", "content": sent})
        messages.append({"role": "user", "content": CONTINUE_INSTRUCTION})
    return {**body, "messages": messages}


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
    client: what text was sent, whether tool calls were, and the usage of the parts before this one."""

    __slots__ = ("text", "tools", "finished", "ident", "earlier_usage", "continuing", "_trim")

    def __init__(self) -> None:
        self.text: list[str] = []  # content sent to the client, in order
        self.tools = False  # a tool-call delta was sent: not resumable
        self.finished = False  # a finish reason was sent: the answer is complete, nothing to continue
        self.ident: tuple[Any, Any, Any] | None = None  # the first stream's (id, created, model)
        self.earlier_usage: dict[str, Any] | None = None  # summed usage of the parts before the current one
        self.continuing = False
        self._trim = False

    @property
    def sent(self) -> str:
        return "".join(self.text)

    @property
    def resumable(self) -> bool:
        """Text reached the client, no tool call did, and the answer had not finished."""
        return bool(self.text) and not self.tools and not self.finished

    def continue_with(self, earlier_usage: dict[str, Any] | None) -> None:
        """The next items come from a continuation, after parts whose usage was `earlier_usage`."""
        self.continuing = True
        self.earlier_usage = earlier_usage
        sent = self.sent
        self._trim = bool(sent) and sent[-1].isspace()

    def __call__(self, item: StreamItem) -> StreamItem | None:
        if item.finish_reason is not None:
            self.finished = True
        chunk = item.chunk
        if not self.continuing:
            if chunk is not None:
                if self.ident is None and "id" in chunk:
                    self.ident = (chunk.get("id"), chunk.get("created"), chunk.get("model"))
                self._see(chunk)
            return item
        if item.kind == "keepalive":
            return None  # the continuation's role preamble: the client has had one
        if item.kind != "chunk" or chunk is None:
            return item
        chunk = dict(chunk)
        if self.ident is not None:
            chunk["id"], chunk["created"], chunk["model"] = self.ident
        if self._trim:
            self._lstrip(chunk)
        if "usage" in chunk and chunk["usage"] is not None and self.earlier_usage:
            chunk["usage"] = sum_usage(self.earlier_usage, chunk["usage"])
        self._see(chunk)
        item = StreamItem(
            "chunk",
            chunk=chunk,
            content=item.content,
            usage=item.usage,
            finish_reason=item.finish_reason,
        )  # raw dropped: the chunk is re-serialised with the first stream's identity
        return item

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


StartWith = Callable[[Candidate, dict[str, Any]], UpstreamAttempt]  # an attempt at a candidate with this body
Pump = Callable[[UpstreamAttempt, list[StreamItem]], Awaitable[StreamEnd]]  # stream it to the client (tapped)
Settle = Callable[[Answer, StreamEnd], None]  # account for one continuation once its stream ended


async def continue_stream(
    first: Part,
    tap: StreamTap,
    *,
    candidates: Sequence[Candidate],
    body: dict[str, Any],
    start: StartWith,
    pump: Pump,
    settle: Settle,
    report: Report,
    options: LoopOptions,
    tried: list[AttemptOutcome],
    notes: list[str],
) -> list[Part]:
    """Continue a failed stream on the targets not tried yet, through the one failover loop, as long as each
    part fails resumably and a target is left. Returns every part, `first` included; the last one's end is how
    the client's stream ended (its error event, if any, is the caller's to send)."""
    parts = [first]
    while True:
        last = parts[-1].end
        if last.classification.ok or last.client_gone or not tap.resumable:
            return parts
        done = {t.target for t in tried}
        rest = [c for c in candidates if c.target not in done]
        if not rest:
            return parts
        sent = tap.sent

        def start_continuation(cand: Candidate, sent: str = sent) -> UpstreamAttempt:
            return start(cand, continuation_body(body, sent, cand.adapter))

        try:
            answer = await first_answer(rest, start_continuation, report, options, tried=tried, notes=notes)
        except Exhausted:
            return parts
        usage: dict[str, Any] | None = None
        for p in parts:
            usage = sum_usage(usage, p.end.usage)
        notes.append(
            f"resumed: {answer.cand.target} continues {parts[-1].cand.target}'s answer after {len(sent)} characters"
        )
        tap.continue_with(usage)
        end = await pump(answer.attempt, answer.opened.buffered)
        settle(answer, end)
        parts.append(Part(answer.cand, end))
