"""The fault timeline: entries like `{at: 30s, provider: X, model: Y, fault: region_blocked, duration: 60s}`,
fired in order as the injected clock passes each `at` (counted from when the timeline starts)."""

from __future__ import annotations

from typing import Any

from adapters.sim.config import TimelineEntry
from controlplane.clock import Clock

__all__ = ["Timeline"]


class Timeline:
    """Which entries are due. It sets no faults itself: the simulator's tick applies what `due()` returns."""

    def __init__(self, entries: list[TimelineEntry], clock: Clock) -> None:
        self._clock = clock
        self._entries = sorted(entries, key=lambda e: e.at)
        self._started_at: float | None = None
        self._next = 0

    @property
    def running(self) -> bool:
        return self._started_at is not None

    @property
    def started_at(self) -> float | None:
        return self._started_at

    def elapsed(self) -> float | None:
        return None if self._started_at is None else self._clock.monotonic() - self._started_at

    def start(self) -> None:
        """(Re)start from t=0: every entry fires again as its time comes."""
        self._started_at = self._clock.monotonic()
        self._next = 0

    def stop(self) -> None:
        self._started_at = None

    def replace(self, entries: list[TimelineEntry]) -> None:
        self._entries = sorted(entries, key=lambda e: e.at)
        self._next = 0
        if self._started_at is not None:
            self._started_at = self._clock.monotonic()

    def due(self) -> list[tuple[float, TimelineEntry]]:
        """Entries whose time has come since the last call, each with its scheduled monotonic instant."""
        elapsed = self.elapsed()
        if elapsed is None or self._started_at is None:
            return []
        out: list[tuple[float, TimelineEntry]] = []
        while self._next < len(self._entries) and self._entries[self._next].at <= elapsed:
            entry = self._entries[self._next]
            out.append((self._started_at + entry.at, entry))
            self._next += 1
        return out

    def to_json(self) -> dict[str, Any]:
        elapsed = self.elapsed()
        return {
            "running": self.running,
            "elapsed_s": None if elapsed is None else round(elapsed, 3),
            "fired": self._next,
            "entries": [e.model_dump(mode="json", exclude_defaults=True) for e in self._entries],
        }
