"""Sliding time window over one target's recent calls: counts, rates, percentiles and a verdict, kept apart per
signal source.

Sources (`Signal`): live traffic, paid completion probes, and cheap probes (model listings, token counts, health
endpoints). A listing's 2 ms round trip says nothing about how fast the model serves, and its success says
nothing about whether completions fail, so the window never mixes them:
- latency and TTFT figures come from live calls, else completion probes, never from cheap probes;
- failure rates are judged per failure group: `serving` (live + completion probes, calls that can fail the same
  way) and `cheap`; each group has its own consecutive-failure streak. The verdict is the worst group's.

The breaker reads only the verdict (resilience4j keeps the same split). The window keeps running counts so
that adding a call and asking for the verdict are O(1) amortised; percentiles are computed on demand and
cached until the window changes, because only the ranker (throttled) and the status API ask for them.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Verdict",
    "Signal",
    "SERVING_PROBE_KINDS",
    "signal_of",
    "Figures",
    "WindowSnapshot",
    "SlidingWindow",
    "DEFAULT_MAX_SAMPLES",
    "PERCENTILE_SAMPLES",
]

# Percentiles are taken over at most this many of the most recent calls of one source: a sort of ~1,000
# values is cheap enough to do on every rerank, and a p95 from 1,000 recent samples is as good as one from 10,000.
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


class Signal(StrEnum):
    """Where a call came from, as far as its figures mean anything about serving."""

    LIVE = "live"  # client traffic through the data plane
    COMPLETION = "completion"  # a paid completion probe: a real (small) generation
    CHEAP = "cheap"  # listings, token counts, health endpoints: reachability only


# Probe kinds that make the model generate, so their latency and failures describe serving.
SERVING_PROBE_KINDS: frozenset[str] = frozenset({"completion"})
_SIGNALS: tuple[Signal, ...] = (Signal.LIVE, Signal.COMPLETION, Signal.CHEAP)
_INDEX = {s: i for i, s in enumerate(_SIGNALS)}
# Failure groups: index 0 = serving (live, completion), 1 = cheap.
_GROUP = (0, 0, 1)
_GROUP_NAMES = ("serving", "cheap")


def signal_of(source: str, kind: str) -> Signal:
    """The signal source of an observation (`Observation.source`, `Observation.kind`)."""
    if source == "live":
        return Signal.LIVE
    return Signal.COMPLETION if kind in SERVING_PROBE_KINDS else Signal.CHEAP


@dataclass(frozen=True, slots=True)
class Figures:
    """The window's figures that describe serving, each with the source it comes from and its sample count.

    Latency/TTFT: live calls, else completion probes (None when neither has a success). Error rate: over the
    serving group (live + completion probes) when it has calls, else over cheap probes."""

    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_source: str | None = None
    latency_samples: int = 0
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    ttft_source: str | None = None
    ttft_samples: int = 0
    error_rate: float | None = None
    error_source: str | None = None  # "serving" or "cheap"
    error_samples: int = 0


@dataclass(frozen=True, slots=True)
class WindowSnapshot:
    """A point-in-time reading of the window. Percentiles are over successful calls only.

    `calls`, `failures`, `failure_rate` and `slow_call_rate` are those of the failure group that decided the
    verdict (else the serving group when it has calls, else the cheap one); `signal_calls` counts every source."""

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
    figures: Figures = Figures()
    group: str = "serving"
    signal_calls: tuple[tuple[str, int], ...] = ()


# One call: (monotonic time, failed, slow, latency of a success or None, ttft of a success or None,
# error class, status, signal index). A tuple, not a dataclass: this is the hot path.
_Call = tuple[float, bool, bool, "float | None", "float | None", str, "int | None", int]


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (no interpolation: the value shown is one that was observed)."""
    if not sorted_values:
        return None
    idx = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 1)) - 1))
    return sorted_values[idx]


class SlidingWindow:
    """Calls of the last `window_s` seconds with running counts per signal source.

    Knobs (all from `BreakerConfig`): `min_calls` before rates count, `failure_rate_threshold`,
    `slow_call_threshold` (seconds; a call at or above it is slow), `slow_call_rate_threshold`,
    `consecutive_failures`. The consecutive-failure streak is not bounded by the window: only a success of the
    same failure group (or a fresh window) ends it, as with Envoy's consecutive_5xx.
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
        "_n",
        "_failures",
        "_slow",
        "_streak",
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
        # running counts per failure group (serving, cheap)
        self._n = [0, 0]
        self._failures = [0, 0]
        self._slow = [0, 0]
        self._streak = [0, 0]
        self._gen = 0  # bumps on every change; figures are cached per generation
        self._cache: Figures | None = None
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
        signal: Signal = Signal.LIVE,
    ) -> None:
        """Record one call. `counts_in_streak=False` records it without touching the consecutive streak
        (pressure signals: a 429 neither proves health nor, alone, proves failure)."""
        # Slowness is about responsiveness: time to first token when known, else the whole call.
        basis = ttft_s if ttft_s is not None else latency_s
        slow = basis is not None and basis >= self.slow_call_threshold
        ok_latency = None if failed else latency_s
        ok_ttft = None if failed else ttft_s
        si = _INDEX[signal]
        g = _GROUP[si]
        self._calls.append((now, failed, slow, ok_latency, ok_ttft, error_class, status, si))
        self._n[g] += 1
        if failed:
            self._failures[g] += 1
            if counts_in_streak:
                self._streak[g] += 1
        elif counts_in_streak:
            self._streak[g] = 0
        if slow:
            self._slow[g] += 1
        self._gen += 1
        if len(self._calls) > self.max_samples:
            self._pop_oldest()
        self._evict(now)

    def _pop_oldest(self) -> None:
        _, failed, slow, _, _, _, _, si = self._calls.popleft()
        g = _GROUP[si]
        self._n[g] -= 1
        if failed:
            self._failures[g] -= 1
        if slow:
            self._slow[g] -= 1
        self._gen += 1

    def _evict(self, now: float) -> None:
        horizon = now - self.window_s
        calls = self._calls
        while calls and calls[0][0] <= horizon:
            self._pop_oldest()

    # -- reading ---------------------------------------------------------------------------------
    def _judge(self) -> tuple[Verdict, int]:
        """(verdict, deciding group); each failure group is judged on its own calls, the worst one wins."""
        for g in (0, 1):
            if self._streak[g] >= self.consecutive_limit:
                return Verdict.CONSECUTIVE_FAILURES, g
        judged = [g for g in (0, 1) if self._n[g] >= self.min_calls]
        for g in judged:
            if self._failures[g] / self._n[g] >= self.failure_rate_threshold:
                return Verdict.FAILURE_RATE_EXCEEDED, g
        for g in judged:
            if self._slow[g] / self._n[g] >= self.slow_call_rate_threshold:
                return Verdict.SLOW_CALL_RATE_EXCEEDED, g
        fallback = 0 if self._n[0] else 1
        return (Verdict.OK if judged else Verdict.BELOW_MIN_CALLS), (judged[0] if judged else fallback)

    def verdict(self, now: float) -> Verdict:
        """The breaker's question, answered from running counts only."""
        self._evict(now)
        return self._judge()[0]

    @property
    def consecutive_failures(self) -> int:
        """The longest current streak over the failure groups."""
        return max(self._streak)

    def calls(self, now: float) -> int:
        self._evict(now)
        return len(self._calls)

    def error_rate(self, now: float) -> float | None:
        """Failures / calls of the serving group (else the cheap one), or None with no calls (unknown is not
        the same as perfect)."""
        return self.figures(now).error_rate

    def percentiles(self, now: float) -> tuple[float | None, float | None, float | None, float | None]:
        """(latency p50, latency p95, ttft p50, ttft p95) that describe serving (see `figures`)."""
        f = self.figures(now)
        return (f.latency_p50_s, f.latency_p95_s, f.ttft_p50_s, f.ttft_p95_s)

    def figures(self, now: float) -> Figures:
        """The serving figures with their sources and sample counts; cached until the window changes."""
        self._evict(now)
        if self._cache is not None and self._cache_gen == self._gen:
            return self._cache
        lat: list[list[float]] = [[], []]  # live, completion (cheap probes never give latency figures)
        ttft: list[list[float]] = [[], []]
        for c in reversed(self._calls):
            if len(lat[0]) >= PERCENTILE_SAMPLES and len(ttft[0]) >= PERCENTILE_SAMPLES:
                break  # enough live samples: completion probes would not be used
            si = c[7]
            if si > 1:
                continue
            if c[3] is not None and len(lat[si]) < PERCENTILE_SAMPLES:
                lat[si].append(c[3])
            if c[4] is not None and len(ttft[si]) < PERCENTILE_SAMPLES:
                ttft[si].append(c[4])
        li = 0 if lat[0] else 1
        ti = 0 if ttft[0] else 1
        ls, ts = sorted(lat[li]), sorted(ttft[ti])
        g = 0 if self._n[0] else 1
        n = self._n[g]
        self._cache = Figures(
            latency_p50_s=_percentile(ls, 0.5),
            latency_p95_s=_percentile(ls, 0.95),
            latency_source=str(_SIGNALS[li]) if ls else None,
            latency_samples=len(ls),
            ttft_p50_s=_percentile(ts, 0.5),
            ttft_p95_s=_percentile(ts, 0.95),
            ttft_source=str(_SIGNALS[ti]) if ts else None,
            ttft_samples=len(ts),
            error_rate=self._failures[g] / n if n else None,
            error_source=_GROUP_NAMES[g] if n else None,
            error_samples=n,
        )
        self._cache_gen = self._gen
        return self._cache

    def snapshot(self, now: float) -> WindowSnapshot:
        self._evict(now)
        verdict, g = self._judge()
        n = self._n[g]
        f = self.figures(now)
        top: Counter[tuple[str, int | None]] = Counter((c[5], c[6]) for c in self._calls if c[1] and _GROUP[c[7]] == g)
        per: Counter[int] = Counter(c[7] for c in self._calls)
        return WindowSnapshot(
            window_s=self.window_s,
            calls=n,
            failures=self._failures[g],
            slow_calls=self._slow[g],
            failure_rate=self._failures[g] / n if n else 0.0,
            slow_call_rate=self._slow[g] / n if n else 0.0,
            consecutive_failures=max(self._streak),
            latency_p50_s=f.latency_p50_s,
            latency_p95_s=f.latency_p95_s,
            ttft_p50_s=f.ttft_p50_s,
            ttft_p95_s=f.ttft_p95_s,
            verdict=verdict,
            top_failures=tuple((cls, st, k) for (cls, st), k in top.most_common(3)),
            figures=f,
            group=_GROUP_NAMES[g],
            signal_calls=tuple((str(s), per[i]) for i, s in enumerate(_SIGNALS)),
        )
