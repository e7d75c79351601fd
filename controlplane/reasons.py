"""Short reasons a person can read, with their evidence, for every table entry: the one formatter every reader
uses (table, events, data-plane attempts, CLI, page). Reasons carry words and the few numbers a person needs;
scores and counts stay in the API's evidence fields.

Examples: `open: 7×server_error (503) in 60 s, since 12:01:05, retry at 12:01:35`,
`withdrawn: region_blocked (403 unsupported_country_region_territory) at 12:00:12`,
`closed: p50 0.42 s, 0% errors`, `excluded: deny_jurisdictions cn`. Times are wall clock, UTC, HH:MM:SS.
"""

from __future__ import annotations

from datetime import datetime

from controlplane.domain import State
from controlplane.moves import Drain, Evidence

__all__ = ["hhmmss", "state_reason", "closed_reason", "excluded_reason", "stated", "outscored_reason", "PANIC_SUFFIX"]

PANIC_SUFFIX = "; admitted least-bad (route in panic)"


def hhmmss(dt: datetime) -> str:
    return dt.strftime("%H:%M:%S")


def _num(x: float) -> str:
    return f"{x:g}" if x == int(x) else f"{x:.2f}"


def _signal(ev: Evidence) -> str:
    """`region_blocked (403 unsupported_country_region_territory)`; the status/code part only when known."""
    cls = ev.error_class or "unknown"
    marks = " ".join(str(x) for x in (ev.status, ev.code) if x is not None)
    return f"{cls} ({marks})" if marks else cls


def _open_cause(reason: str, ev: Evidence) -> str:
    if reason == "consecutive_failures":
        return f"{ev.consecutive_failures} consecutive failures, last {_signal(ev)}"
    if reason == "slow_call_rate":
        return f"{ev.slow_call_rate:.0%} slow calls of {ev.calls} in {_num(ev.window_s)} s"
    if reason == "failure_rate":
        if ev.top_failures:
            cls, status, count = ev.top_failures[0]
            st = f" ({status})" if status is not None else ""
            more = ev.failures - count
            extra = f" +{more} other" if more > 0 else ""
            return f"{count}×{cls}{st}{extra} in {_num(ev.window_s)} s ({ev.failure_rate:.0%} of {ev.calls} calls)"
        return f"{ev.failure_rate:.0%} failures of {ev.calls} calls in {_num(ev.window_s)} s"
    if reason == "trial_failed":
        return f"half-open trial failed: {_signal(ev)}"
    if reason == "trials_exhausted":
        return "half-open trials used up without enough successes"
    return reason


def state_reason(
    state: State,
    *,
    reason: str,
    evidence: Evidence,
    since: datetime,
    retry_at: datetime | None = None,
    latency_p50_s: float | None = None,
    error_rate: float | None = None,
    drain: Drain | None = None,
    trials: tuple[int, int, int] = (0, 0, 0),
    metrics_only: bool = False,
) -> str:
    """One line for one target. `trials` = (used, allowed, successes) while half_open; latency and error
    rate describe a closed target's current window (None error rate = no calls yet)."""
    if state is State.DRAINED and drain is not None:
        until = f" until {hhmmss(drain.until)}" if drain.until else ""
        scope = f" (provider {drain.provider})" if drain.provider else ""
        return f"drained{scope}: {drain.reason or 'no reason given'} by {drain.actor} since {hhmmss(drain.at)}{until}"
    if state is State.WITHDRAWN:
        via = f" via {evidence.via}" if evidence.via else ""
        head = "would withdraw" if metrics_only else "withdrawn"
        return f"{head}: {_signal(evidence)}{via} at {hhmmss(since)}"
    if state is State.OPEN:
        head = "would open" if metrics_only else "open"
        retry = f", retry at {hhmmss(retry_at)}" if retry_at else ""
        return f"{head}: {_open_cause(reason, evidence)}, since {hhmmss(since)}{retry}"
    if state is State.HALF_OPEN:
        used, allowed, ok = trials
        return f"half_open: trial {used}/{allowed}, {ok} ok, since {hhmmss(since)}"
    return closed_reason(latency_p50_s, error_rate)


def closed_reason(latency_p50_s: float | None, error_rate: float | None) -> str:
    """A closed target's line from its serving figures; readers that lay the figures of now over a table
    entry recompute it with them, so the words never disagree with the numbers beside them."""
    if error_rate is None:
        return "closed: no recent calls"
    lat = f"p50 {latency_p50_s:.2f} s, " if latency_p50_s is not None else ""
    return f"closed: {lat}{error_rate:.0%} errors"


def excluded_reason(excluded_by: str) -> str:
    """`deny_jurisdictions: cn` → `excluded: deny_jurisdictions cn`."""
    return "excluded: " + excluded_by.replace(": ", " ", 1)


def stated(state: str, reason: str) -> str:
    """`state: reason`, without doubling a prefix the reason already has (`withdrawn: withdrawn: …`)."""
    st = str(state)
    if not reason:
        return st
    if reason.startswith((st, "would ", "excluded")):  # the table's reasons already start with their state
        return reason
    return f"{st}: {reason}"


def outscored_reason(new: str | None) -> str:
    """Why an admissible primary gave way: the challenger's name; the scores are evidence, not prose."""
    return f"outscored by {new} (beyond the margin)" if new else "outscored"
