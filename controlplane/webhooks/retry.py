"""The webhook retry schedule: Svix-like delays from seconds to hours, with jitter so retries do not align."""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["RETRY_SCHEDULE", "JITTER", "retry_delay"]

# Seconds before attempt n+1 (index n-1 = after the n-th failure); Svix's published schedule.
RETRY_SCHEDULE: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
JITTER = 0.2  # ±20 %


def retry_delay(failed_attempts: int, rng: random.Random, schedule: Sequence[float] = RETRY_SCHEDULE) -> float:
    """Delay before the next attempt after `failed_attempts` failures (≥ 1), with ±20 % jitter."""
    base = schedule[min(failed_attempts, len(schedule)) - 1]
    return base * (1.0 + JITTER * (2.0 * rng.random() - 1.0))
