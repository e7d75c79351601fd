"""Budget periods (UTC calendar): when the current day, week (from Monday) or month began and when it ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = ["Period", "PERIODS", "period_bounds", "day_of"]

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the period holding `now`, both UTC."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return start, end
    raise ValueError(f"unknown budget period {period!r}; use one of {', '.join(PERIODS)}")


def day_of(at: datetime) -> str:
    """The UTC day a spend row is kept under ('2026-12-02')."""
    return at.astimezone(UTC).date().isoformat()
