"""Events: what changed, why, under which config. Same payload in the store, the API and webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["EVENT_TYPES", "Event", "EventBus"]

EVENT_TYPES = (
    "target.state_changed",
    "target.withdrawn",
    "target.recovered",
    "route.primary_changed",
    "route.exhausted",
    "route.recovered",
    "override.changed",
    "config.reloaded",
    "webhook.endpoint_disabled",
    "webhook.test",
)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened. `id` is assigned by the store (monotonic); `data` is JSON-able, secret-free."""

    type: str
    at: datetime
    subject: str  # a target key, a route name, a provider id or an endpoint id
    data: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "subject": self.subject,
            "data": self.data,
            "config_hash": self.config_hash,
        }


Subscriber = Callable[[Event], None]


class EventBus:
    """In-process fan-out. Subscribers are called synchronously and must not block (queue work instead)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._queues: list[asyncio.Queue[Event]] = []

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn)

    def queue(self, maxsize: int = 10_000) -> asyncio.Queue[Event]:
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self._queues.append(q)
        return q

    def unqueue(self, q: asyncio.Queue[Event]) -> None:
        if q in self._queues:
            self._queues.remove(q)

    def publish(self, event: Event) -> None:
        for fn in list(self._subscribers):
            fn(event)
        for q in self._queues:
            if not q.full():  # a slow reader loses events rather than stalling the pipeline
                q.put_nowait(event)
