"""One small fake per boundary, for unit tests. Integration tests use the real parts."""

from __future__ import annotations

from controlplane.clock import FakeClock
from controlplane.events import Event

__all__ = ["FakeClock", "EventSink"]


class EventSink:
    """Collects published events in memory."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [e.type for e in self.events]
