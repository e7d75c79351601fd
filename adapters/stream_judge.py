"""The one judge of an upstream stream: its bytes in (through the adapter's translator), its class out.

The completion probe (adapters/calls.py) and live traffic (dataplane/attempts.py) both read streams through a
`StreamJudge`, so the same upstream bytes get the same class whoever reads them. The rules:

- An `error` item (a mid-stream error event, or the translator's own `bad_response` for garbage) ends the
  stream with that item's class.
- The terminator ends the stream `ok` when the stream carried content or a finish reason, and `bad_response`
  (`empty_completion`) when it carried neither. A finish reason without content is an answer: a reasoning
  model given a tiny budget ends with `finish_reason: "length"` and no visible text, a filtered answer ends
  with `content_filter` (provider-semantics.md §1.1, §2); the model did answer, and the probe, which asks for
  one token on purpose, must not call that a fault. An empty 200 (no content, no finish reason: NET-10,
  OpenRouter's cold start) is `bad_response` (§6). So "done before any chunk" is `bad_response` exactly when
  no chunk said why the answer ended; a usage-only chunk is not an answer either.
- The upstream closing (or breaking off) without its terminator is `bad_response` (truncated), never `ok`.
- Bytes the translator cannot handle (it raised) are `bad_response`: a malformed answer is classified, never
  a crash.

`answered` says when a stream has shown it is an answer (content or a finish reason). The data plane commits
a stream to its client only then: up to that point nothing has been forwarded and an empty or failed stream
can still fail over.
"""

from __future__ import annotations

from adapters.base import StreamItem, StreamTranslator
from controlplane.domain import Classification, ErrorClass

__all__ = ["StreamJudge", "EMPTY_COMPLETION"]

EMPTY_COMPLETION = "empty_completion"


class StreamJudge:
    """Follows one stream: `feed(data)` per read, `close()` at the end of the body; `verdict` once it ended."""

    __slots__ = ("_tr", "_status", "verdict", "content", "finished", "usage")

    def __init__(self, translator: StreamTranslator, *, status: int | None = None) -> None:
        self._tr = translator
        self._status = status
        self.verdict: Classification | None = None  # set once the stream ended, cleanly or not
        self.content = False  # a content-bearing delta was seen (text, tool call, reasoning)
        self.finished = False  # a finish reason was seen
        self.usage: dict[str, int] | None = None  # the last usage the stream reported

    @property
    def answered(self) -> bool:
        """The stream is an answer (content or a finish reason): safe to commit to a client."""
        return self.content or self.finished

    def feed(self, data: bytes) -> list[StreamItem]:
        """The items `data` completes, up to the stream's end (an error item is not returned: see `verdict`)."""
        if self.verdict is not None:
            return []
        try:
            items = self._tr.feed(data)
        except Exception as exc:  # a translator bug on odd bytes is a bad answer, never a crash
            self.verdict = self._bad("unreadable", f"unreadable stream: {type(exc).__name__}")
            return []
        return self._see(items)

    def close(self, cut: BaseException | None = None) -> list[StreamItem]:
        """The body ended (`cut`: it broke off with that exception). Always leaves a verdict."""
        if self.verdict is not None:
            return []
        try:
            out = self._see(self._tr.close())
        except Exception as exc:
            out = []
            self.verdict = self._bad("unreadable", f"unreadable stream: {type(exc).__name__}")
        if self.verdict is None:  # the translator said nothing about the missing terminator: still truncated
            why = (
                f"upstream stream cut short ({type(cut).__name__})"
                if cut
                else "upstream stream ended without its terminator"
            )
            self.verdict = self._bad("truncated", why)
        return out

    def _see(self, items: list[StreamItem]) -> list[StreamItem]:
        for i, item in enumerate(items):
            kind = item.kind
            if kind == "error":
                self.verdict = item.classification or self._bad("stream_error", "stream error")
                return items[:i]
            if item.content:
                self.content = True
            if item.finish_reason is not None:
                self.finished = True
            if item.usage:
                self.usage = item.usage
            if kind == "done":
                if self.content or self.finished:
                    self.verdict = Classification(ErrorClass.OK, status=self._status)
                    return items[: i + 1]
                self.verdict = self._bad(EMPTY_COMPLETION, "stream ended with no content and no finish reason")
                return items[:i]
        return items

    def _bad(self, code: str, detail: str) -> Classification:
        return Classification(ErrorClass.BAD_RESPONSE, status=self._status, code=code, detail=detail)
