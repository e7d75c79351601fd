"""Breaker state machine: every transition, driven by `now` values (no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from controlplane.breaker import Breaker
from controlplane.config import BreakerConfig
from controlplane.domain import ErrorClass, Observation, Source, State
from controlplane.errors import IllegalTransition
from controlplane.moves import ALLOWED, OPERATOR_ALLOWED, Drain, Transition

T = "acme/m"
AT = datetime(2026, 1, 1, tzinfo=UTC)
E = ErrorClass


def ob(cls: ErrorClass = E.OK, **kw: Any) -> Observation:
    kw.setdefault("kind", "completion")
    return Observation(target=T, at=AT, source=kw.pop("source", Source.PROBE), error_class=cls, **kw)


def brk(**kw: Any) -> Breaker:
    return Breaker(T, BreakerConfig(**kw), 0.0)


def feed(b: Breaker, items: list[ErrorClass], start: float = 0.0, step: float = 1.0) -> list[Transition]:
    out: list[Transition] = []
    for i, cls in enumerate(items):
        out.extend(b.record(ob(cls, status=503 if cls is E.SERVER_ERROR else None), start + i * step))
    return out


def open_breaker(b: Breaker, at: float = 0.0) -> None:
    feed(b, [E.SERVER_ERROR] * b.cfg.consecutive_failures, start=at, step=0.1)
    assert b.state is State.OPEN


def test_opens_when_failure_rate_crosses_threshold() -> None:
    b = brk(min_calls=4, failure_rate_threshold=0.5)
    moves = feed(b, [E.OK, E.SERVER_ERROR, E.OK, E.SERVER_ERROR])
    assert [(m.old, m.new, m.reason) for m in moves] == [(State.CLOSED, State.OPEN, "failure_rate")]
    ev = moves[0].evidence
    assert (ev.calls, ev.failures, ev.error_class, ev.status) == (4, 2, "server_error", 503)
    assert ev.top_failures == (("server_error", 503, 2),)
    assert not b.admits()


def test_stays_closed_below_min_calls() -> None:
    b = brk(min_calls=5, consecutive_failures=10)
    assert feed(b, [E.SERVER_ERROR, E.OK, E.SERVER_ERROR, E.OK]) == []
    assert b.state is State.CLOSED


def test_opens_on_consecutive_failures() -> None:
    b = brk(consecutive_failures=3, min_calls=50)
    moves = feed(b, [E.TIMEOUT, E.CONNECT, E.BAD_RESPONSE])
    assert moves[0].reason == "consecutive_failures"


def test_opens_on_slow_call_rate() -> None:
    b = brk(min_calls=3, slow_call_threshold=5.0, slow_call_rate_threshold=0.6)
    moves: list[Transition] = []
    for i in range(3):
        moves += b.record(ob(latency_s=6.0), float(i))
    assert [m.reason for m in moves] == ["slow_call_rate"]


def test_client_errors_never_count() -> None:
    b = brk(consecutive_failures=2, min_calls=2)
    assert feed(b, [E.CLIENT_ERROR] * 20) == []
    assert b.window.calls(20) == 0


def test_status_page_observations_are_neutral() -> None:
    b = brk(consecutive_failures=1)
    assert b.record(ob(E.SERVER_ERROR, kind="status_page"), 0.0) == ()
    assert b.state is State.CLOSED


def test_open_ignores_outcomes_and_moves_to_half_open_after_open_duration() -> None:
    b = brk(open_duration=30.0)
    open_breaker(b)
    # Neither a listing (it cannot see a failing call) nor a live answer that was in flight ends it early.
    assert b.record(ob(E.OK, kind="catalogue"), 10.0) == ()
    assert b.record(ob(E.OK, kind="live", source=Source.LIVE), 10.0) == ()
    assert b.record(ob(E.SERVER_ERROR), 10.0) == ()
    assert b.poll(29.0) == ()
    assert not b.admits()  # still open: nothing is admitted until poll/record makes the move the table shows
    (m,) = b.poll(30.5)
    assert (m.old, m.new, m.reason) == (State.OPEN, State.HALF_OPEN, "open_elapsed")
    assert b.admits()  # half_open: the trial may go


def test_half_open_closes_after_configured_successes() -> None:
    b = brk(open_duration=30.0, half_open_trials=3, half_open_successes=2)
    open_breaker(b)
    moves = b.record(ob(E.OK), 31.0)  # lazy open → half_open, then the first trial
    assert [m.new for m in moves] == [State.HALF_OPEN]
    moves = b.record(ob(E.OK), 32.0)
    assert [(m.new, m.reason) for m in moves] == [(State.CLOSED, "trials_succeeded")]
    assert b.window.calls(32.0) == 0  # a fresh window for the new state


def test_half_open_reopens_on_one_failure_for_longer() -> None:
    b = brk(open_duration=30.0, open_duration_max=100.0)
    open_breaker(b)
    b.poll(31.0)
    (m,) = b.record(ob(E.TIMEOUT), 32.0)
    assert (m.new, m.reason) == (State.OPEN, "trial_failed")
    assert b.open_until == pytest.approx(32.0 + 60.0)
    b.poll(92.0)
    b.record(ob(E.TIMEOUT), 92.0)
    assert b.open_until == pytest.approx(92.0 + 100.0)  # 120 capped at open_duration_max


def test_half_open_admits_only_the_configured_trials() -> None:
    b = brk(half_open_trials=3, half_open_successes=3, overload_cooldown=0.0)
    open_breaker(b)
    b.poll(100.0)
    assert b.state is State.HALF_OPEN
    b.record(ob(E.OK), 101.0)
    b.record(ob(E.OK), 102.0)
    assert b.trials == 2 and b.admits()
    # the third trial is an overload: neither success nor failure, and the trials are spent → open again
    (m,) = b.record(ob(E.OVERLOADED), 103.0)
    assert (m.new, m.reason) == (State.OPEN, "trials_exhausted")


def test_half_open_counts_no_more_than_the_trials() -> None:
    b = brk(half_open_trials=2, half_open_successes=2)
    open_breaker(b)
    b.poll(100.0)
    b.trials = 2  # both trial slots taken (outcomes still in flight)
    assert not b.admits()
    assert b.record(ob(E.OK), 101.0) == ()
    assert b.state is State.HALF_OPEN and b.trial_successes == 0


@pytest.mark.parametrize("cls", [E.REGION_BLOCKED, E.MODEL_GONE, E.AUTH, E.QUOTA_EXHAUSTED])
@pytest.mark.parametrize("start", [State.CLOSED, State.OPEN, State.HALF_OPEN])
def test_withdraw_classes_withdraw_at_once_from_any_state(cls: ErrorClass, start: State) -> None:
    b = brk()
    if start is not State.CLOSED:
        open_breaker(b)
    if start is State.HALF_OPEN:
        b.poll(1000.0)
    (m,) = b.record(ob(cls, status=403), 1000.0)
    assert (m.old, m.new, m.reason) == (start, State.WITHDRAWN, str(cls))
    assert not b.admits()


def test_withdrawn_never_returns_without_a_successful_check() -> None:
    b = brk(withdrawn_recheck=900.0)
    b.record(ob(E.REGION_BLOCKED, status=403, code="unsupported_country_region_territory"), 0.0)
    for i, cls in enumerate([E.TIMEOUT, E.SERVER_ERROR, E.RATE_LIMITED, E.CLIENT_ERROR, E.REGION_BLOCKED]):
        assert b.record(ob(cls), 1000.0 * (i + 1)) == ()
    assert b.poll(10_000.0) == ()
    assert b.state is State.WITHDRAWN and not b.admits()
    (m,) = b.record(ob(E.OK), 10_001.0)
    assert (m.old, m.new, m.reason) == (State.WITHDRAWN, State.HALF_OPEN, "recheck_succeeded")


def test_withdrawn_is_probed_only_when_recheck_is_due() -> None:
    b = brk(withdrawn_recheck=900.0, withdrawn_recheck_first=900.0)
    b.record(ob(E.MODEL_GONE), 0.0)
    assert not b.should_probe(899.0)
    assert b.should_probe(900.0)
    b.record(ob(E.MODEL_GONE), 905.0)  # the recheck failed: next one a full cadence later
    assert not b.should_probe(1800.0) and b.should_probe(1805.0)
    b.recheck_now(1806.0)
    assert b.should_probe(1806.0)


def test_quota_with_a_known_reset_only_cools() -> None:
    b = brk()
    assert b.record(ob(E.QUOTA_EXHAUSTED, retry_after_s=3600.0), 0.0) == ()
    assert b.state is State.CLOSED
    assert b.headroom(3599.0) == 0.0 and b.headroom(3600.0) is None


def test_a_new_azure_deployment_not_found_counts_as_a_failure_until_the_grace_is_over() -> None:
    b = brk()
    assert b.record(ob(E.MODEL_GONE, status=404, code="deployment_not_found"), 299.0) == ()
    assert b.state is State.CLOSED and b.window.snapshot(299.0).failures == 1
    (m,) = b.record(ob(E.MODEL_GONE, status=404, code="deployment_not_found"), 300.0)
    assert (m.new, m.reason) == (State.WITHDRAWN, "model_gone")
    b2 = brk()
    b2.recheck_now(1000.0)  # a config change starts the grace again
    assert b2.record(ob(E.MODEL_GONE, status=404, code="deployment_not_found"), 1200.0) == ()
    (m2,) = b2.record(ob(E.MODEL_GONE, status=404, code="deploymentnotfound"), 1200.0)  # other codes: no grace
    assert m2.new is State.WITHDRAWN


def test_lone_rate_limits_lower_headroom_but_do_not_open() -> None:
    b = brk(min_calls=2, consecutive_failures=2, window=60.0)
    b.record(ob(headroom=0.8), 0.0)
    assert b.record(ob(E.RATE_LIMITED, retry_after_s=5.0), 100.0) == ()
    assert b.headroom(104.0) == 0.0
    assert b.headroom(105.0) == 0.8
    assert b.record(ob(E.RATE_LIMITED, retry_after_s=5.0), 200.0) == ()  # a minute later: still lone
    assert b.state is State.CLOSED


def test_sustained_rate_limiting_opens() -> None:
    b = brk(min_calls=4, failure_rate_threshold=0.5, consecutive_failures=3)
    moves: list[Transition] = []
    for i in range(6):
        moves += b.record(ob(E.RATE_LIMITED, retry_after_s=1.0), float(i))
    assert [m.reason for m in moves] == ["failure_rate"]
    assert moves[0].evidence.consecutive_failures == 0  # pressure never builds the 5xx streak


def test_rate_limit_without_retry_after_backs_off_exponentially_capped() -> None:
    b = brk(rate_limit_default_backoff=1.0, rate_limit_backoff_max=4.0, window=1.0, min_calls=100)
    holds = []
    for i in range(5):
        t = i * 10.0
        b.record(ob(E.RATE_LIMITED), t)
        holds.append(b.hold_until - t)
    assert holds == [1.0, 2.0, 4.0, 4.0, 4.0]
    b.record(ob(E.OK), 100.0)
    b.record(ob(E.RATE_LIMITED), 110.0)
    assert b.hold_until == 111.0


def test_overload_holds_for_the_cooldown_or_the_longer_retry_after() -> None:
    b = brk(overload_cooldown=10.0)
    b.record(ob(E.OVERLOADED), 0.0)
    assert b.hold_until == 10.0
    b.record(ob(E.OVERLOADED, retry_after_s=30.0), 1.0)
    assert b.hold_until == 31.0


def test_retry_after_extends_but_never_shortens_the_hold() -> None:
    b = brk(open_duration=30.0)
    open_breaker(b)
    until = b.open_until
    assert until is not None
    b.record(ob(E.SERVER_ERROR, retry_after_s=1.0), 2.0)
    assert b.open_until == until
    b.record(ob(E.SERVER_ERROR, retry_after_s=120.0), 2.0)
    assert b.open_until == 122.0
    b.record(ob(E.RATE_LIMITED, retry_after_s=5.0), 3.0)
    assert b.open_until == 122.0 and b.hold_until == 122.0


def test_a_pending_hold_lengthens_a_new_opening() -> None:
    b = brk(open_duration=30.0, consecutive_failures=2)
    b.record(ob(E.OVERLOADED, retry_after_s=90.0), 0.0)
    feed(b, [E.SERVER_ERROR, E.SERVER_ERROR], start=1.0)
    assert b.open_until == 90.0


def test_malformed_retry_after_is_ignored() -> None:
    b = brk()
    b.record(ob(E.SERVER_ERROR, retry_after_s=float("nan")), 0.0)
    b.record(ob(E.SERVER_ERROR, retry_after_s=-5.0), 0.0)
    assert b.headroom(0.0) is None


def test_metrics_only_moves_and_reports_but_never_blocks() -> None:
    b = brk(mode="metrics_only", consecutive_failures=2)
    moves = feed(b, [E.SERVER_ERROR, E.SERVER_ERROR])
    assert moves[0].new is State.OPEN and moves[0].evidence.would
    assert b.admits()
    b.record(ob(E.AUTH), 2.0)
    assert b.state is State.WITHDRAWN and b.admits()


def test_drain_keeps_detecting_underneath_and_undrain_restores_the_detector_state() -> None:
    b = brk(consecutive_failures=2)
    m = b.set_drain(Drain("maintenance", "ops", AT), 0.0)
    assert m is not None and (m.old, m.new) == (State.CLOSED, State.DRAINED)
    assert not b.admits() and b.state is State.DRAINED
    assert b.set_drain(Drain("longer", "ops", AT), 0.0) is None  # update, no second move
    moves = b.record(ob(E.REGION_BLOCKED), 1.0)
    assert moves[0].shadow and moves[0].new is State.WITHDRAWN
    assert b.state is State.DRAINED
    (back,) = b.clear_drain(2.0, "ops", "done")
    assert (back.old, back.new, back.reason) == (State.DRAINED, State.WITHDRAWN, "undrained")
    assert b.clear_drain(3.0, "ops") == ()


def test_illegal_moves_raise() -> None:
    b = brk()
    b.record(ob(E.MODEL_GONE), 0.0)
    with pytest.raises(IllegalTransition) as exc:
        b._move(State.CLOSED, "cheat", b.evidence, 1.0)
    assert (exc.value.old, exc.value.new) == (State.WITHDRAWN, State.CLOSED)
    assert (State.WITHDRAWN, State.CLOSED) not in ALLOWED
    assert all(State.DRAINED in pair for pair in OPERATOR_ALLOWED)


def test_time_spent_closed_earns_back_open_levels() -> None:
    b = brk(
        open_duration=10.0, open_duration_max=80.0, consecutive_failures=1, half_open_successes=1, half_open_trials=1
    )
    b.record(ob(E.TIMEOUT), 0.0)
    b.poll(10.0)
    b.record(ob(E.TIMEOUT), 10.0)  # reopen: 20 s
    assert b.openings == 2
    b.poll(30.0)
    b.record(ob(E.OK), 30.0)  # closed at 30
    b.record(ob(E.TIMEOUT), 31.0)  # flapping right away: longer again
    assert b.open_until == 31.0 + 40.0
    b.poll(71.0)
    b.record(ob(E.OK), 71.0)
    b.record(ob(E.TIMEOUT), 71.0 + 3 * 80.0)  # healthy for three caps: back to the first duration
    assert b.open_until == pytest.approx(311.0 + 10.0)


def test_round_trip_through_dict_keeps_state_and_deadlines() -> None:
    b = brk(open_duration=30.0)
    open_breaker(b, at=5.0)
    d = b.to_dict(now=10.0)
    r = Breaker.from_dict(T, b.cfg, d, now=1000.0)
    assert r.state is State.OPEN
    assert r.open_until == pytest.approx(b.open_until - 10.0 + 1000.0)  # type: ignore[operator]
    assert r.evidence == b.evidence and r.openings == b.openings


def test_malformed_observations_never_crash_or_poison_the_window() -> None:
    b = brk(min_calls=1)
    b.record(ob(E.OK, latency_s=float("nan"), ttft_s=-1.0), 0.0)
    b.record(ob(E.OK, latency_s=0.5, ttft_s=float("inf")), 1.0)
    assert b.window.percentiles(1.0) == (0.5, 0.5, None, None)
    weird = Observation(target=T, at=AT, source=Source.PROBE, kind="completion", error_class="server_error")  # type: ignore[arg-type]
    b.record(weird, 2.0)
    assert b.window.calls(2.0) == 3
    unknown = Observation(target=T, at=AT, source=Source.PROBE, kind="completion", error_class="teapot")  # type: ignore[arg-type]
    assert b.record(unknown, 3.0) == () and b.window.calls(3.0) == 3


def test_open_moves_to_half_open_on_a_probe_of_the_opening_signal_after_a_short_minimum() -> None:
    """Issue 18 item 4: while open, a success of a probe that sees the failing calls brings trials at once
    (after open_min_duration), not after the whole open duration."""
    b = brk(open_duration=30.0, open_min_duration=2.0)
    open_breaker(b)  # opened at 0.4 by failing completions
    assert b.early_half_open_at() == 2.4
    assert b.record(ob(E.OK), 2.0) == ()  # too soon: a hang's first probe may just be lucky
    assert b.record(ob(E.OK, kind="count_tokens"), 2.5)[0].reason == "probe_succeeded"
    assert b.state is State.HALF_OPEN and b.admits()  # live traffic takes the trials as before


def test_a_catalogue_opened_breaker_ends_early_only_on_a_listing() -> None:
    b = brk(consecutive_failures=1, open_min_duration=1.0)
    b.record(ob(E.SERVER_ERROR, kind="catalogue"), 0.0)
    assert b.record(ob(E.OK, kind="completion"), 5.0) == ()
    assert b.record(ob(E.OK, kind="catalogue"), 5.0)[0].new is State.HALF_OPEN


def test_only_a_first_opening_ends_early_a_target_that_fails_its_trials_waits_its_open_duration() -> None:
    """Flap damping: after a failed trial (or a new failure before the open level decayed) the open duration
    doubles and no probe success cuts it short."""
    b = brk(open_duration=30.0, open_duration_max=300.0, open_min_duration=2.0)
    open_breaker(b)
    assert b.record(ob(E.OK), 2.4)[0].reason == "probe_succeeded"
    (m,) = b.record(ob(E.SERVER_ERROR), 2.5)
    assert m.reason == "trial_failed" and b.open_until == 2.5 + 60.0
    assert b.early_half_open_at() is None
    assert b.record(ob(E.OK), 10.0) == () and b.record(ob(E.OK), 62.0) == ()
    (m,) = b.poll(62.5)
    assert m.reason == "open_elapsed"
    b.record(ob(E.OK), 63.0)
    b.record(ob(E.OK), 64.0)
    assert b.detector_state is State.CLOSED
    feed(b, [E.SERVER_ERROR] * 5, start=70.0, step=0.1)  # fails again soon after closing: level 3, no early return
    assert b.state is State.OPEN and b.openings == 3 and b.early_half_open_at() is None


def test_a_target_healthy_for_long_gets_its_early_return_back() -> None:
    b = brk(open_duration=30.0, open_duration_max=300.0, open_min_duration=2.0)
    open_breaker(b)
    b.record(ob(E.OK), 2.4)
    b.record(ob(E.SERVER_ERROR), 2.5)  # level 2
    b.poll(62.5)
    b.record(ob(E.OK), 63.0)
    b.record(ob(E.OK), 64.0)
    feed(b, [E.SERVER_ERROR] * 5, start=64.0 + 2 * 300.0, step=0.1)  # two caps closed: two levels earned back
    assert b.openings == 1 and b.early_half_open_at() is not None


def test_failed_rechecks_are_silent_and_back_off_from_first_to_cap() -> None:
    b = brk(withdrawn_recheck_first=60.0, withdrawn_recheck=900.0)
    (m,) = b.record(ob(E.AUTH, status=401), 0.0)
    evidence = m.evidence
    due, schedule = 0.0, []
    for _ in range(7):
        assert b.next_recheck is not None
        schedule.append(b.next_recheck - due)
        due = b.next_recheck
        assert not b.should_probe(due - 0.1, "completion")
        assert b.should_probe(due, "completion") and not b.should_probe(due, "catalogue")
        assert b.record(ob(E.AUTH, status=401), due) == ()
        assert b.evidence == evidence and b.last_recheck == due and b.last_recheck_result == "auth"
    assert schedule == [60.0, 120.0, 240.0, 480.0, 900.0, 900.0, 900.0]


def test_recovery_after_a_recheck_is_by_probe_trials_and_resets_the_backoff() -> None:
    b = brk(withdrawn_recheck_first=60.0, half_open_trials=3, half_open_successes=2)
    b.record(ob(E.REGION_BLOCKED, status=403), 0.0)
    b.record(ob(E.REGION_BLOCKED, status=403), 60.0)  # failed: next at 180
    (m,) = b.record(ob(E.OK), 180.0)
    assert (m.new, m.reason) == (State.HALF_OPEN, "recheck_succeeded")
    assert not b.admits() and b.probe_trials
    assert b.record(ob(E.OK, kind="live", source=Source.LIVE), 181.0) == ()  # not a trial
    assert b.record(ob(E.OK, kind="catalogue"), 181.0) == ()  # cannot see the block
    assert b.trials == 0
    assert b.record(ob(E.OK), 190.0) == ()
    (m,) = b.record(ob(E.OK), 200.0)
    assert (m.new, m.reason) == (State.CLOSED, "trials_succeeded") and b.admits()
    b.record(ob(E.REGION_BLOCKED, status=403), 300.0)
    assert b.next_recheck == 360.0  # a fresh withdrawal starts soon again


def test_a_trial_that_meets_the_block_again_backs_off_further() -> None:
    b = brk(withdrawn_recheck_first=60.0)
    b.record(ob(E.REGION_BLOCKED, status=403), 0.0)
    b.record(ob(E.OK), 60.0)  # recheck succeeded
    (m,) = b.record(ob(E.REGION_BLOCKED, status=403), 61.0)
    assert (m.old, m.new) == (State.HALF_OPEN, State.WITHDRAWN)
    assert b.next_recheck == 61.0 + 120.0


def test_with_no_probe_that_sees_the_signal_any_probe_rechecks() -> None:
    b = brk(withdrawn_recheck_first=60.0)
    b.probe_kinds = frozenset({"catalogue", "status_page"})  # completion probes off, no count_tokens
    b.record(ob(E.REGION_BLOCKED, status=403), 0.0)
    assert b.should_probe(60.0, "catalogue") and not b.should_probe(60.0, "status_page")
    assert b.record(ob(E.OK, kind="catalogue"), 60.0)[0].new is State.HALF_OPEN


def test_recheck_state_round_trips_through_to_dict() -> None:
    b = brk(withdrawn_recheck_first=60.0)
    b.record(ob(E.REGION_BLOCKED, status=403), 0.0)
    b.record(ob(E.REGION_BLOCKED, status=403), 60.0)
    c = Breaker.from_dict(T, b.cfg, b.to_dict(100.0), 1100.0)
    assert (c.recheck_level, c.next_recheck, c.last_recheck, c.last_recheck_result) == (
        1,
        1180.0,
        1060.0,
        "region_blocked",
    )
    assert c.signal == frozenset({"completion", "count_tokens"})


def test_an_open_target_without_a_probe_that_sees_its_signal_waits_out_its_open_duration() -> None:
    """A listing says nothing about hanging completions: with completion probes off it does not end the open
    period early (the open duration still does); a withdrawn target, with no timer, takes any probe instead."""
    b = brk(open_duration=30.0, open_min_duration=1.0)
    b.probe_kinds = frozenset({"catalogue"})
    open_breaker(b)
    assert b.record(ob(E.OK, kind="catalogue"), 5.0) == ()
    (m,) = b.poll(30.4)
    assert m.reason == "open_elapsed"
