"""Sliding window: running counts, verdict order, eviction, percentiles."""

from __future__ import annotations

import pytest

from controlplane.window import SlidingWindow, Verdict


def _win(**kw: float) -> SlidingWindow:
    args: dict[str, float] = dict(
        min_calls=4,
        failure_rate_threshold=0.5,
        slow_call_threshold=2.0,
        slow_call_rate_threshold=0.5,
        consecutive_failures=3,
    )
    args.update(kw)
    return SlidingWindow(60.0, **args)  # type: ignore[arg-type]


def test_below_min_calls_until_enough_calls() -> None:
    w = _win()
    w.add(0, failed=True)
    w.add(1, failed=False)
    assert w.verdict(1) is Verdict.BELOW_MIN_CALLS


def test_failure_rate_exceeded_at_threshold() -> None:
    w = _win()
    for i, failed in enumerate([True, False, True, False]):
        w.add(i, failed=failed)
    assert w.verdict(4) is Verdict.FAILURE_RATE_EXCEEDED
    assert w.error_rate(4) == 0.5


def test_consecutive_failures_count_even_below_min_calls_and_reset_on_success() -> None:
    w = _win(min_calls=10)
    for i in range(2):
        w.add(i, failed=True)
    w.add(2, failed=False)
    w.add(3, failed=True)
    w.add(4, failed=True)
    assert w.verdict(4) is Verdict.BELOW_MIN_CALLS
    w.add(5, failed=True)
    assert w.verdict(5) is Verdict.CONSECUTIVE_FAILURES


def test_calls_outside_the_streak_neither_extend_nor_end_it() -> None:
    w = _win(min_calls=10)
    w.add(0, failed=True)
    w.add(1, failed=True)
    w.add(2, failed=False, counts_in_streak=False)
    w.add(3, failed=True, counts_in_streak=False)
    assert w.consecutive_failures == 2


def test_slow_call_rate_uses_ttft_when_known() -> None:
    w = _win()
    for i in range(4):
        w.add(i, failed=False, latency_s=30.0, ttft_s=0.1)  # slow total, fast first token: not slow
    assert w.verdict(4) is Verdict.OK
    for i in range(4, 12):
        w.add(i, failed=False, latency_s=2.5)
    assert w.verdict(12) is Verdict.SLOW_CALL_RATE_EXCEEDED


def test_old_calls_leave_the_window() -> None:
    w = _win()
    for i in range(4):
        w.add(i, failed=True)
    assert w.calls(10) == 4
    assert w.calls(63.5) == 0
    snap = w.snapshot(63.5)
    assert (snap.calls, snap.failures, snap.failure_rate) == (0, 0, 0.0)


def test_percentiles_are_nearest_rank_over_successes_only() -> None:
    w = _win()
    for i, lat in enumerate([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]):
        w.add(i, failed=False, latency_s=lat, ttft_s=lat / 2)
    w.add(11, failed=True, latency_s=100.0, error_class="timeout")
    snap = w.snapshot(11)
    assert snap.latency_p50_s == 0.5
    assert snap.latency_p95_s == 1.0
    assert snap.ttft_p50_s == 0.25
    assert snap.top_failures == (("timeout", None, 1),)


def test_percentiles_unknown_without_successes() -> None:
    w = _win()
    w.add(0, failed=True)
    assert w.percentiles(0) == (None, None, None, None)
    assert _win().error_rate(0) is None


def test_sample_cap_bounds_memory_and_keeps_counts_right() -> None:
    w = SlidingWindow(
        60,
        min_calls=1,
        failure_rate_threshold=0.5,
        slow_call_threshold=9,
        slow_call_rate_threshold=1,
        consecutive_failures=99,
        max_samples=10,
    )
    for i in range(15):
        w.add(i * 0.01, failed=i < 5)
    snap = w.snapshot(0.2)
    assert snap.calls == 10
    assert snap.failures == 0  # the five failures were the oldest


def test_rejects_a_non_positive_window() -> None:
    with pytest.raises(ValueError, match="window must be positive"):
        SlidingWindow(
            0,
            min_calls=1,
            failure_rate_threshold=0.5,
            slow_call_threshold=1,
            slow_call_rate_threshold=1,
            consecutive_failures=1,
        )
