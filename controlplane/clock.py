"""Time, injected: monotonic seconds for intervals, UTC wall time for anything shown or stored."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "SystemClock", "FakeClock"]


class Clock(Protocol):
    def monotonic(self) -> float: ...  # windows, durations, deadlines

    def wall(self) -> datetime: ...  # stored timestamps, API output, logs (UTC)


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to: tests advance it and call the tick function themselves."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self._start, self._elapsed = start, 0.0

    def monotonic(self) -> float:
        return self._elapsed

    def wall(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def advance(self, seconds: float) -> None:
        self._elapsed += seconds
