"""What every stream translator shares: SSE framing, exactly one end per stream, truncation on close.

A subclass translates one framed SSE event into StreamItems (`_translate`); this base stops at the first
`done` or `error` item and, when the upstream closes without a terminator, ends the stream as
`bad_response` (truncated) — never as a clean end.
"""

from __future__ import annotations

from adapters.base import StreamItem
from adapters.sse import SSEEvent, SSEParser
from controlplane.domain import Classification, ErrorClass

__all__ = ["SSETranslator"]


class SSETranslator:
    """Base of the per-family stream translators (implements adapters.base.StreamTranslator)."""

    terminator = "a terminator"  # named in the truncation detail, e.g. "[DONE]", "message_stop"

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._ended = False

    def feed(self, data: bytes) -> list[StreamItem]:
        return self._items(self._sse.feed(data))

    def close(self) -> list[StreamItem]:
        items = self._items(self._sse.close())
        if not self._ended:
            self._ended = True
            truncated = Classification(
                ErrorClass.BAD_RESPONSE, code="truncated", detail=f"stream closed without {self.terminator}"
            )
            items.append(StreamItem("error", classification=truncated))
        return items

    def _translate(self, ev: SSEEvent) -> list[StreamItem]:
        raise NotImplementedError

    def _items(self, events: list[SSEEvent]) -> list[StreamItem]:
        out: list[StreamItem] = []
        for ev in events:
            if self._ended:
                break
            for item in self._translate(ev):
                out.append(item)
                if item.kind in ("done", "error"):
                    self._ended = True
        return out
