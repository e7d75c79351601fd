"""Spend budget for paid probes: USD per provider per UTC day, estimated from the configured prices.

A paid probe reserves its worst case (prompt estimate + full token budget) before it runs and settles to the
measured usage afterwards, so concurrent probes cannot overshoot the cap. The day resets at 00:00 UTC.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date

from controlplane.clock import Clock
from controlplane.config import PriceConfig

__all__ = ["SpendBudget", "Reservation", "estimate_cost", "estimate_prompt_tokens"]

# Chat framing (roles, separators) costs a few tokens beyond the prompt text itself.
_FRAMING_TOKENS = 12


def estimate_prompt_tokens(prompt: str) -> int:
    """A deliberately high estimate (about 3 characters per token) so the budget errs on the safe side."""
    return _FRAMING_TOKENS + (len(prompt) + 2) // 3


def estimate_cost(price: PriceConfig, input_tokens: int, output_tokens: int) -> float:
    """USD for one call, prices being USD per million tokens."""
    return (input_tokens * price.input + output_tokens * price.output) / 1_000_000


@dataclass(frozen=True, slots=True)
class Reservation:
    provider: str
    day: date
    amount: float


class SpendBudget:
    """Daily spend per provider; thread-safe (probes run concurrently)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._day: date | None = None
        self._spent: dict[str, float] = {}

    def _roll(self) -> date:
        today = self._clock.wall().date()
        if today != self._day:
            self._day, self._spent = today, {}
        return today

    def spent(self, provider: str) -> float:
        """USD spent (and reserved) today by `provider`'s paid probes."""
        with self._lock:
            self._roll()
            return self._spent.get(provider, 0.0)

    def try_reserve(self, provider: str, amount: float, limit: float) -> Reservation | None:
        """Reserve `amount` if today's spend stays within `limit`; None means: skip this probe."""
        with self._lock:
            day = self._roll()
            now = self._spent.get(provider, 0.0)
            if amount > 0 and now + amount > limit + 1e-12:
                return None
            self._spent[provider] = now + amount
            return Reservation(provider, day, amount)

    def settle(self, reservation: Reservation, actual: float | None) -> float:
        """Replace the reserved worst case with the measured cost (kept when usage is unknown); returns the
        amount charged."""
        charged = reservation.amount if actual is None else max(0.0, actual)
        with self._lock:
            if self._roll() == reservation.day:
                self._spent[reservation.provider] = max(
                    0.0, self._spent.get(reservation.provider, 0.0) - reservation.amount + charged
                )
        return charged

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            self._roll()
            return dict(self._spent)
