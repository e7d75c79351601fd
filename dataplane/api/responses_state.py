"""Stored Responses conversations: what `previous_response_id` continues and `GET /v1/responses/{id}` reads.

Opt-in (`dataplane.responses.store`, off by default: it keeps prompts and answers). Kept in the data plane's
memory for `retention`, at most `max_entries` (the oldest go first): a restart forgets them, and each data
replica has its own. Turnout keeps the state itself, so a conversation continues on whichever target answers
the next turn: the stored input and output items are prepended to the new input, and no upstream is asked to
remember anything.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from controlplane.clock import Clock
from controlplane.config import ResponsesStateConfig

__all__ = ["Stored", "ResponseStore"]


@dataclass(frozen=True, slots=True)
class Stored:
    response: dict[str, Any]  # the response object as the client got it
    conversation: list[dict[str, Any]]  # every input item of the turn (earlier turns included), then its output
    expires: float  # monotonic


class ResponseStore:
    """Responses by id, for `retention` seconds of the injected clock."""

    def __init__(self, clock: Clock, settings: ResponsesStateConfig) -> None:
        self._clock = clock
        self.settings = settings
        self._items: OrderedDict[str, Stored] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.settings.store

    def put(self, response: dict[str, Any], inputs: list[dict[str, Any]]) -> None:
        rid = response.get("id")
        if not self.enabled or not isinstance(rid, str) or not rid:
            return
        output = [o for o in response.get("output") or [] if isinstance(o, dict) and o.get("type") != "reasoning"]
        self._items[rid] = Stored(response, [*inputs, *output], self._clock.monotonic() + self.settings.retention)
        self._items.move_to_end(rid)
        while len(self._items) > self.settings.max_entries:
            self._items.popitem(last=False)

    def get(self, rid: str) -> Stored | None:
        got = self._items.get(rid)
        if got is None:
            return None
        if got.expires <= self._clock.monotonic():
            del self._items[rid]
            return None
        return got

    def __len__(self) -> int:
        return len(self._items)
