"""Spend budget for paid probes: USD per provider per UTC day, estimated from the configured prices.

A paid probe reserves its worst case (prompt estimate + full token budget) before it runs and settles to the
measured usage afterwards, so concurrent probes cannot overshoot the cap. The day resets at 00:00 UTC.

With a ledger (the store), today's spend is loaded at start (`load()`, blocking) and every change is saved soon
after it happens (`flush()`, blocking; the control plane runs it off the loop after each change and at stop), so
a restart does not hand a provider a fresh day's budget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from controlplane.clock import Clock
from controlplane.config import PriceConfig

__all__ = ["SpendBudget", "SpendLedger", "Reservation", "estimate_cost", "estimate_prompt_tokens"]

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


class SpendLedger(Protocol):
    """Where the day's spend is kept across restarts (controlplane/store.py: Store)."""

    def load_spend(self, day: date) -> dict[str, float]: ...

    def save_spend(self, day: date, spent: Mapping[str, float]) -> None: ...


class SpendBudget:
    """Daily spend per provider; thread-safe (probes run concurrently)."""

    def __init__(
        self, clock: Clock, ledger: SpendLedger | None = None, on_change: Callable[[], None] | None = None
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._day: date | None = None
        self._spent: dict[str, float] = {}
        self._ledger = ledger
        self.on_change = on_change  # called after each change (the control plane schedules flush() off the loop)
        self._changes = 0  # bumped on each change; flush() saves only when it moved
        self._saved = 0

    @property
    def dirty(self) -> bool:
        return self._changes != self._saved

    def load(self) -> None:
        """Adopt today's spend from the ledger (blocking). What this process already spent today is kept if higher."""
        if self._ledger is None:
            return
        with self._lock:
            today = self._roll()
        stored = self._ledger.load_spend(today)
        with self._lock:
            if self._roll() == today:
                for provider, usd in stored.items():
                    self._spent[provider] = max(self._spent.get(provider, 0.0), usd)

    def flush(self) -> None:
        """Save the day's spend to the ledger when it changed since the last save (blocking)."""
        if self._ledger is None:
            return
        with self._lock:
            changes, day = self._changes, self._roll()
            spent = dict(self._spent)
        if changes == self._saved:
            return
        self._ledger.save_spend(day, spent)
        self._saved = changes

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
            self._changes += 1
        if self.on_change is not None:
            self.on_change()
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
                self._changes += 1
        if self.on_change is not None:
            self.on_change()
        return charged

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            self._roll()
            return dict(self._spent)
