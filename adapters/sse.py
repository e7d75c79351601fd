"""Incremental Server-Sent Events framing: bytes in as they arrive, whole events out.

Handles `event:`/`data:`/`id:` fields, multi-line data, comments (`: keep-alive`), CRLF/LF/CR line ends and
split reads. Gemini sends a mid-stream error as raw multi-line JSON without a `data:` prefix; such a block is
collected until its braces balance and comes out as a `json` event. A line that grows past the size cap
comes out as one `overflow` event, after which the parser yields nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SSEEvent", "SSEParser", "DEFAULT_MAX_EVENT_BYTES"]

DEFAULT_MAX_EVENT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One framed unit. `raw` is the event re-serialised as `field: value` lines ending in a blank line."""

    kind: Literal["event", "comment", "json", "overflow"]
    data: str | None = None  # joined data lines (event), JSON text (json)
    event: str | None = None  # the `event:` field
    comment: str | None = None
    raw: bytes = b""


class SSEParser:
    """Feed bytes, get events; `close()` flushes what the upstream left unterminated."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_event_bytes
        self._event: str | None = None
        self._data: list[str] = []
        self._raw: list[bytes] = []
        self._json: list[str] = []
        self._depth = 0
        self._in_str = False
        self._esc = False
        self._dead = False
        self._size = 0

    def feed(self, data: bytes) -> list[SSEEvent]:
        if self._dead:
            return []
        self._buf += data
        out: list[SSEEvent] = []
        while True:
            line = self._next_line()
            if line is None:
                break
            self._line(line, out)
            if self._dead:
                return out
        if len(self._buf) + self._size > self._max:
            self._dead = True
            out.append(SSEEvent("overflow"))
        return out

    def close(self) -> list[SSEEvent]:
        """The stream ended: a last unterminated line is read, a pending JSON block is flushed.

        A `data:` event without its blank line is still dispatched: the consumer decides whether the
        stream was complete (it looks for the terminator), so nothing is silently dropped here.
        """
        if self._dead:
            return []
        out: list[SSEEvent] = []
        if self._buf:
            tail = bytes(self._buf).rstrip(b"\r")
            self._buf.clear()
            self._line(tail.decode("utf-8", "replace"), out)
        if self._json:
            out.append(SSEEvent("json", data="\n".join(self._json)))
            self._json = []
        self._dispatch(out)
        self._dead = True
        return out

    def _next_line(self) -> str | None:
        buf = self._buf
        n = buf.find(b"\n")
        r = buf.find(b"\r")
        if n < 0 and r < 0:
            return None
        if r >= 0 and (n < 0 or r < n):
            if r == len(buf) - 1:
                return None  # could be the first half of CRLF: wait for the next byte
            end, skip = r, 2 if buf[r + 1 : r + 2] == b"\n" else 1
        else:
            end, skip = n, 1
        line = bytes(buf[:end])
        del buf[: end + skip]
        return line.decode("utf-8", "replace")

    def _line(self, line: str, out: list[SSEEvent]) -> None:
        self._size += len(line) + 1
        if self._json:
            self._json_line(line, out)
            return
        if line == "":
            self._dispatch(out)
            return
        if line.startswith(":"):
            out.append(SSEEvent("comment", comment=line[1:].strip(), raw=(line + "\n\n").encode()))
            self._size = 0 if not self._data else self._size
            return
        stripped = line.lstrip()
        if not self._data and self._event is None and stripped[:1] in ("{", "["):
            self._json_line(line, out)
            return
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._raw.append(line.encode())
        elif field == "event":
            self._event = value
            self._raw.append(line.encode())
        elif field in ("id", "retry"):
            self._raw.append(line.encode())
        # any other field is ignored, as the SSE spec says

    def _json_line(self, line: str, out: list[SSEEvent]) -> None:
        self._json.append(line)
        for ch in line:
            if self._in_str:
                if self._esc:
                    self._esc = False
                elif ch == "\\":
                    self._esc = True
                elif ch == '"':
                    self._in_str = False
            elif ch == '"':
                self._in_str = True
            elif ch in "{[":
                self._depth += 1
            elif ch in "}]":
                self._depth -= 1
        if self._depth <= 0:
            text = "\n".join(self._json)
            self._json, self._depth, self._in_str, self._esc, self._size = [], 0, False, False, 0
            out.append(SSEEvent("json", data=text, raw=(text + "\n").encode()))

    def _dispatch(self, out: list[SSEEvent]) -> None:
        if self._data or self._event is not None:
            raw = b"\n".join(self._raw) + b"\n\n"
            data = "\n".join(self._data) if self._data else None
            out.append(SSEEvent("event", data=data, event=self._event, raw=raw))
        self._event, self._data, self._raw, self._size = None, [], [], 0
