"""Sliding time window over one target's recent calls: counts, rates, percentiles and a verdict.

The breaker reads only the verdict (resilience4j keeps the same split). The window keeps running counts so
that adding a call and asking for the verdict are O(1) amortised; percentiles are computed on demand and
cached until the window changes, because only the ranker (throttled) and the status API ask for them.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice

__all__ = ["Verdict", "WindowSnapshot", "SlidingWindow", "DEFAULT_MAX_SAMPLES", "PERCENTILE_SAMPLES"]

# Percentiles are taken over at most this many of the most recent calls: a sort of ~1,000 values is cheap
# enough to do on every rerank, and a p95 from 1,000 recent samples is as good as one from 10,000.
PERCENTILE_SAMPLES = 1_024
# Upper bound on calls held at once: a very busy target keeps "the last `window` seconds or the last
# DEFAULT_MAX_SAMPLES calls, whichever is fewer". Bounds memory and the cost of a percentile sort.
DEFAULT_MAX_SAMPLES = 10_000


class Verdict(StrEnum):
    """What the window says about its target, in the order the checks are made."""

    CONSECUTIVE_FAILURES = "consecutive_failures"  # N failures in a row (counted even below min_calls)
    BELOW_MIN_CALLS = "below_min_calls"  # too few calls for rates to mean anything
    FAILURE_RATE_EXCEEDED = "failure_rate"
    SLOW_CALL_RATE_EXCEEDED = "slow_call_rate"
    OK = "ok"


@dataclass(frozen=True, slots=True)
class WindowSnapshot:
    """A point-in-time reading of the window. Percentiles are over successful calls only."""

    window_s: float
    calls: int
    failures: int
    slow_calls: int
    failure_rate: float
    slow_call_rate: float
    consecutive_failures: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    verdict: Verdict
    # Failures in the window by (error class, status), most frequent first: evidence for reasons.
    top_failures: tuple[tuple[str, int | None, int], ...] = ()


# One call: (monotonic time, failed, slow, latency of a success or None, ttft of a success or None,
# error class, status). A tuple, not a dataclass: this is the hot path.
_Call = tuple[float, bool, bool, "float | None", "float | None", str, "int | None"]


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (no interpolation: the value shown is one that was observed)."""
    if not sorted_values:
        return None
    idx = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 1)) - 1))
    return sorted_values[idx]


class SlidingWindow:
    """Calls of the last `window_s` seconds with running counts.

    Knobs (all from `BreakerConfig`): `min_calls` before rates count, `failure_rate_threshold`,
    `slow_call_threshold` (seconds; a call at or above it is slow), `slow_call_rate_threshold`,
    `consecutive_failures`. The consecutive-failure streak is not bounded by the window: only a success
    (or a fresh window) ends it, as with Envoy's consecutive_5xx.
    """

    __slots__ = (
        "window_s",
        "min_calls",
        "failure_rate_threshold",
        "slow_call_threshold",
        "slow_call_rate_threshold",
        "consecutive_limit",
        "max_samples",
        "_calls",
        "_failures",
        "_slow",
        "_consecutive",
        "_gen",
        "_cache",
        "_cache_gen",
    )

    def __init__(
        self,
        window_s: float,
        *,
        min_calls: int,
        failure_rate_threshold: float,
        slow_call_threshold: float,
        slow_call_rate_threshold: float,
        consecutive_failures: int,
        max_samples: int = DEFAULT_MAX_SAMPLES,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"window must be positive, got {window_s!r}")
        self.window_s = window_s
        self.min_calls = min_calls
        self.failure_rate_threshold = failure_rate_threshold
        self.slow_call_threshold = slow_call_threshold
        self.slow_call_rate_threshold = slow_call_rate_threshold
        self.consecutive_limit = consecutive_failures
        self.max_samples = max_samples
        self._calls: deque[_Call] = deque()
        self._failures = 0
        self._slow = 0
        self._consecutive = 0
        self._gen = 0  # bumps on every change; percentiles are cached per generation
        self._cache: tuple[float | None, float | None, float | None, float | None] | None = None
        self._cache_gen = -1

    # -- writing ---------------------------------------------------------------------------------
    def add(
        self,
        now: float,
        *,
        failed: bool,
        latency_s: float | None = None,
        ttft_s: float | None = None,
        error_class: str = "ok",
        status: int | None = None,
        counts_in_streak: bool = True,
    ) -> None:
        """Record one call. `counts_in_streak=False` records it without touching the consecutive streak
        (pressure signals: a 429 neither proves health nor, alone, proves failure)."""
        # Slowness is about responsiveness: time to first token when known, else the whole call.
        basis = ttft_s if ttft_s is not None else latency_s
        slow = basis is not None and basis >= self.slow_call_threshold
        ok_latency = None if failed else latency_s
        ok_ttft = None if failed else ttft_s
        self._calls.append((now, failed, slow, ok_latency, ok_ttft, error_class, status))
        if failed:
            self._failures += 1
            if counts_in_streak:
                self._consecutive += 1
        elif counts_in_streak:
            self._consecutive = 0
        if slow:
            self._slow += 1
        self._gen += 1
        if len(self._calls) > self.max_samples:
            self._pop_oldest()
        self._evict(now)

    def _pop_oldest(self) -> None:
        _, failed, slow, _, _, _, _ = self._calls.popleft()
        if failed:
            self._failures -= 1
        if slow:
            self._slow -= 1
        self._gen += 1

    def _evict(self, now: float) -> None:
        horizon = now - self.window_s
        calls = self._calls
        while calls and calls[0][0] <= horizon:
            self._pop_oldest()

    # -- reading ---------------------------------------------------------------------------------
    def verdict(self, now: float) -> Verdict:
        """The breaker's question, answered from running counts only."""
        self._evict(now)
        if self._consecutive >= self.consecutive_limit:
            return Verdict.CONSECUTIVE_FAILURES
        n = len(self._calls)
        if n < self.min_calls:
            return Verdict.BELOW_MIN_CALLS
        if self._failures / n >= self.failure_rate_threshold:
            return Verdict.FAILURE_RATE_EXCEEDED
        if self._slow / n >= self.slow_call_rate_threshold:
            return Verdict.SLOW_CALL_RATE_EXCEEDED
        return Verdict.OK

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    def calls(self, now: float) -> int:
        self._evict(now)
        return len(self._calls)

    def error_rate(self, now: float) -> float | None:
        """Failures / calls, or None with no calls (unknown is not the same as perfect)."""
        self._evict(now)
        n = len(self._calls)
        return self._failures / n if n else None

    def percentiles(self, now: float) -> tuple[float | None, float | None, float | None, float | None]:
        """(latency p50, latency p95, ttft p50, ttft p95) over the successful calls among the most recent
        PERCENTILE_SAMPLES; cached until the window changes."""
        self._evict(now)
        if self._cache is not None and self._cache_gen == self._gen:
            return self._cache
        recent = (
            self._calls
            if len(self._calls) <= PERCENTILE_SAMPLES
            else list(islice(reversed(self._calls), PERCENTILE_SAMPLES))
        )
        lat = sorted([c[3] for c in recent if c[3] is not None])
        ttft = sorted([c[4] for c in recent if c[4] is not None])
        self._cache = (_percentile(lat, 0.5), _percentile(lat, 0.95), _percentile(ttft, 0.5), _percentile(ttft, 0.95))
        self._cache_gen = self._gen
        return self._cache

    def snapshot(self, now: float) -> WindowSnapshot:
        verdict = self.verdict(now)
        n = len(self._calls)
        lp50, lp95, tp50, tp95 = self.percentiles(now)
        top: Counter[tuple[str, int | None]] = Counter((c[5], c[6]) for c in self._calls if c[1])
        return WindowSnapshot(
            window_s=self.window_s,
            calls=n,
            failures=self._failures,
            slow_calls=self._slow,
            failure_rate=self._failures / n if n else 0.0,
            slow_call_rate=self._slow / n if n else 0.0,
            consecutive_failures=self._consecutive,
            latency_p50_s=lp50,
            latency_p95_s=lp95,
            ttft_p50_s=tp50,
            ttft_p95_s=tp95,
            verdict=verdict,
            top_failures=tuple((cls, st, k) for (cls, st), k in top.most_common(3)),
        )
