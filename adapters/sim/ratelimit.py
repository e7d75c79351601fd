"""Simulated rate limits: request and token budgets that really decrement and refill each window of the
injected clock, rendered as each family's headers (OpenAI `x-ratelimit-*` with Go-duration resets,
Anthropic `anthropic-ratelimit-*` with RFC 3339 instants, none for Gemini, DeepSeek and local servers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from adapters.sim.catalogue import rfc3339
from adapters.sim.config import RateLimits
from controlplane.clock import Clock

__all__ = ["RateLimiter", "Snapshot", "go_duration", "rate_headers", "OPENAI_HEADER_FLAVORS"]

# OpenAI-compatible hosts that send x-ratelimit-* (provider-semantics.md §3); the others send none.
OPENAI_HEADER_FLAVORS = frozenset({"openai", "azure", "groq", "mistral", "together", "xai", "fireworks"})


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String(): `12ms`, `2s`, `1.5s`, `6m0s`, `1h2m3s`."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"  # sub-millisecond shown as 1ms: headers stay ASCII
    whole_h, rest = divmod(seconds, 3600)
    whole_m, secs = divmod(rest, 60)
    s = f"{secs:.3f}".rstrip("0").rstrip(".")
    if whole_h:
        return f"{int(whole_h)}h{int(whole_m)}m{s}s"
    if whole_m:
        return f"{int(whole_m)}m{s}s"
    return f"{s}s"


@dataclass(frozen=True, slots=True)
class Snapshot:
    limit_requests: int
    remaining_requests: int
    limit_tokens: int
    remaining_tokens: int
    reset_in_s: float


class RateLimiter:
    """One provider's budget for the current window."""

    def __init__(self, limits: RateLimits, clock: Clock) -> None:
        self._limits, self._clock = limits, clock
        self._window_start = clock.monotonic()
        self._requests = 0
        self._tokens = 0

    def _roll(self) -> None:
        now = self._clock.monotonic()
        if now - self._window_start >= self._limits.window:
            self._window_start = now
            self._requests = self._tokens = 0

    def try_consume(self, tokens: int) -> bool:
        """Take one request and `tokens` from the budget; False (and nothing taken) when either is spent."""
        self._roll()
        if self._requests >= self._limits.requests or self._tokens >= self._limits.tokens:
            return False
        self._requests += 1
        self._tokens = min(self._limits.tokens, self._tokens + tokens)
        return True

    def snapshot(self) -> Snapshot:
        self._roll()
        lim = self._limits
        reset = max(0.0, lim.window - (self._clock.monotonic() - self._window_start))
        return Snapshot(lim.requests, lim.requests - self._requests, lim.tokens, lim.tokens - self._tokens, reset)

    def reset(self) -> None:
        self._window_start = self._clock.monotonic()
        self._requests = self._tokens = 0


def rate_headers(family: str, flavor: str, snap: Snapshot, clock: Clock) -> dict[str, str]:
    """The capacity headers this kind of provider sends on every answer."""
    if family == "anthropic":
        reset = rfc3339(clock.wall() + timedelta(seconds=snap.reset_in_s))
        out: dict[str, str] = {}
        for dim, limit, remaining in (
            ("requests", snap.limit_requests, snap.remaining_requests),
            ("tokens", snap.limit_tokens, snap.remaining_tokens),
            ("input-tokens", snap.limit_tokens, snap.remaining_tokens),
            ("output-tokens", snap.limit_tokens // 5, snap.remaining_tokens // 5),
        ):
            out |= {
                f"anthropic-ratelimit-{dim}-limit": str(limit),
                f"anthropic-ratelimit-{dim}-remaining": str(max(0, remaining)),
                f"anthropic-ratelimit-{dim}-reset": reset,
            }
        return out
    if family == "openai" and flavor in OPENAI_HEADER_FLAVORS:
        reset_s = go_duration(snap.reset_in_s)
        return {
            "x-ratelimit-limit-requests": str(snap.limit_requests),
            "x-ratelimit-remaining-requests": str(max(0, snap.remaining_requests)),
            "x-ratelimit-reset-requests": reset_s,
            "x-ratelimit-limit-tokens": str(snap.limit_tokens),
            "x-ratelimit-remaining-tokens": str(max(0, snap.remaining_tokens)),
            "x-ratelimit-reset-tokens": reset_s,
        }
    return {}
