"""Half-open trials are calls begun inside the half_open period (issue 18 item 4): a probe in flight through a
hang that is cut just after the move says how the target was, not how it is; a listing cannot see a hang."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.breaker import Breaker
from controlplane.config import BreakerConfig
from controlplane.domain import ErrorClass, Observation, Source, State, TargetRef
from controlplane.scheduler import ProbeScheduler
from probes import ProbeContext
from tests.fakes import FakeClock
from tests.probes.scripted import ScriptedAdapter, make_config

T = "acme/m"
E = ErrorClass
ZERO = datetime(2026, 1, 1, tzinfo=UTC)  # wall time at monotonic 0 (the injected clock's start)


def wall(t: float) -> datetime:
    return ZERO + timedelta(seconds=t)


def call(cls: ErrorClass, began: float, ended: float, kind: str = "completion", **kw: Any) -> Observation:
    """An outcome of a call begun at `began` and ended at `ended` (monotonic seconds, wall anchored at ZERO)."""
    src = Source.LIVE if kind == "live" else Source.PROBE
    return Observation(target=T, at=wall(ended), source=src, kind=kind, error_class=cls, started_at=wall(began), **kw)


def half_open_at(t: float, **cfg: Any) -> Breaker:
    """A breaker opened at 0 by hanging completions (timeouts), moved to half_open at `t` (open duration over)."""
    b = Breaker(T, BreakerConfig(open_duration=min(t, 30.0), open_duration_max=600.0, **cfg), 0.0)
    for _ in range(b.cfg.consecutive_failures):
        b.record(call(E.TIMEOUT, 0.0, 0.0, kind="live"), 0.0)
    assert b.state is State.OPEN
    (m,) = b.poll(t)
    assert m.new is State.HALF_OPEN
    return b


def test_a_probe_begun_while_open_and_cut_after_the_move_does_not_reopen() -> None:
    b = half_open_at(30.0)
    # The bench's case: a probe sent at 29.5 into the hang, cut at its 1 s deadline at 30.5.
    assert b.record(call(E.TIMEOUT, 29.5, 30.5, code="probe_timeout"), 30.5) == ()
    assert (b.state, b.trials) == (State.HALF_OPEN, 0) and b.admits()
    assert b.window.calls(30.5) == 0  # ignored like outcomes beyond the trials: not in the period's figures


def test_a_failure_of_a_call_begun_inside_half_open_reopens_for_longer() -> None:
    b = half_open_at(30.0)
    (m,) = b.record(call(E.TIMEOUT, 30.2, 31.2, code="probe_timeout"), 31.2)
    assert (m.new, m.reason) == (State.OPEN, "trial_failed")
    assert b.open_until == 31.2 + 60.0


def test_a_success_begun_before_the_period_does_not_count_toward_closing() -> None:
    b = half_open_at(30.0, half_open_successes=2)
    assert b.record(call(E.OK, 29.0, 30.1), 30.1) == ()
    assert b.record(call(E.OK, 30.0, 30.2), 30.2) == ()  # begun as the period began: a trial
    assert (b.trials, b.trial_successes) == (1, 1)
    (m,) = b.record(call(E.OK, 30.3, 30.4, kind="live"), 30.4)
    assert (m.new, m.reason) == (State.CLOSED, "trials_succeeded")


def test_without_a_start_time_the_latency_says_when_the_call_began() -> None:
    b = half_open_at(30.0)
    stale = Observation(T, wall(30.5), Source.LIVE, "live", E.TIMEOUT, latency_s=1.0)
    assert b.record(stale, 30.5) == ()
    unknown = Observation(T, wall(30.6), Source.LIVE, "live", E.TIMEOUT)  # no start, no latency: a trial
    assert b.record(unknown, 30.6)[0].reason == "trial_failed"


def test_the_outcome_that_makes_the_lazy_move_began_before_it_and_is_no_trial() -> None:
    b = Breaker(T, BreakerConfig(open_duration=30.0), 0.0)
    for _ in range(b.cfg.consecutive_failures):
        b.record(call(E.TIMEOUT, 0.0, 0.0, kind="live"), 0.0)
    (m,) = b.record(call(E.TIMEOUT, 30.0, 31.0, code="probe_timeout"), 31.0)  # open → half_open, not back
    assert (m.new, b.state, b.trials) == (State.HALF_OPEN, State.HALF_OPEN, 0)


def test_a_listing_is_no_trial_of_a_target_opened_on_calls() -> None:
    b = half_open_at(30.0, half_open_successes=1)
    # A catalogue timeout begun inside the period: the listing cannot see a hang on completions either way.
    assert b.record(call(E.TIMEOUT, 31.0, 32.0, kind="catalogue"), 32.0) == ()
    assert b.record(call(E.OK, 32.0, 32.1, kind="catalogue"), 32.1) == ()
    assert (b.state, b.trials) == (State.HALF_OPEN, 0)
    (m,) = b.record(call(E.OK, 33.0, 33.2), 33.2)  # a completion is
    assert m.new is State.CLOSED


def test_a_listing_is_a_trial_of_a_target_the_listing_opened() -> None:
    b = Breaker(T, BreakerConfig(open_duration=30.0), 0.0)
    for _ in range(b.cfg.consecutive_failures):
        b.record(call(E.SERVER_ERROR, 0.0, 0.0, kind="catalogue", status=503), 0.0)
    assert b.state is State.OPEN and b.signal == {"catalogue"}
    b.poll(30.0)
    (m,) = b.record(call(E.SERVER_ERROR, 31.0, 31.1, kind="catalogue", status=503), 31.1)
    assert m.reason == "trial_failed"


_outcomes = st.sampled_from([E.OK, E.TIMEOUT, E.SERVER_ERROR, E.CONNECT, E.BAD_RESPONSE])
_kinds = st.sampled_from(["completion", "live", "count_tokens", "catalogue"])
# (stale?, outcome, kind, how long the call took) in order of arrival, one a second from the move on
_arrivals = st.lists(st.tuples(st.booleans(), _outcomes, _kinds, st.floats(0.0, 0.9)), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None, database=None)
@given(_arrivals)
def test_calls_begun_before_the_period_change_nothing_whatever_the_order_of_arrival(
    arrivals: list[tuple[bool, ErrorClass, str, float]],
) -> None:
    """However stale outcomes interleave with fresh ones, the breaker moves exactly as on the fresh ones alone
    (while it is half_open: once closed, every outcome counts in the window as always)."""
    start = 30.0
    with_stale, fresh_only = half_open_at(start), half_open_at(start)
    for i, (stale, cls, kind, took) in enumerate(arrivals):
        if fresh_only.state is not State.HALF_OPEN:
            break
        now = start + 1.0 + i
        began = start - 0.5 - took if stale else now - took
        moves = with_stale.record(call(cls, began, now, kind=kind), now)
        if stale:
            assert moves == ()
        else:
            assert moves == fresh_only.record(call(cls, began, now, kind=kind), now)
        assert (with_stale.state, with_stale.trials, with_stale.trial_successes) == (
            fresh_only.state,
            fresh_only.trials,
            fresh_only.trial_successes,
        )


async def test_a_probe_cut_at_its_deadline_says_when_its_call_began() -> None:
    clock = FakeClock()

    async def hangs(target: TargetRef, ctx: ProbeContext) -> list[Observation]:
        clock.advance(1.5)  # the injected clock moves while the call hangs; the deadline (real) cuts it
        await asyncio.Event().wait()
        return []

    cfg = make_config(probes="probes: {kinds: {catalogue: {interval: 60s, timeout: 20ms}}}")
    sink: list[Observation] = []

    class Sink:
        def submit(self, obs: Observation) -> None:
            sink.append(obs)

    sched = ProbeScheduler(
        cfg, clock, session=None, sink=Sink(), adapter_for=lambda p: ScriptedAdapter(), kinds={"catalogue": hangs}
    )
    out = await sched.run_probe_job("p0/m0", "catalogue")
    assert out and all(o.code == "probe_timeout" for o in out)
    assert all(o.started_at == clock.wall() - timedelta(seconds=1.5) and o.at == clock.wall() for o in out)
    assert sink == out
