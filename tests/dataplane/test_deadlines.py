"""Learned first-byte deadlines (dataplane/deadlines.py), with the injected clock: the percentile times the
factor, its floor and its bound, too little history, forgetting old answers, the output-size scaling; and a
hanging target cut by its learned deadline through the data plane, counted as `deadline_cut` in the decision."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from controlplane.config import DataPlaneConfig, LearnedDeadlineConfig
from controlplane.decisions import Decision
from dataplane.deadlines import FirstByteDeadlines, requested_size
from dataplane.proxy import DATA_STATE
from tests.dataplane.conftest import Env
from tests.fakes import FakeClock


def _deadlines(clock: FakeClock, **kw: Any) -> FirstByteDeadlines:
    learned = LearnedDeadlineConfig(**{"min_samples": 5, "window": 60.0, **kw})
    return FirstByteDeadlines(DataPlaneConfig(first_byte_timeout=30.0, learned_first_byte=learned), clock)


def test_too_little_history_keeps_the_configured_timeout() -> None:
    clock = FakeClock()
    d = _deadlines(clock)
    assert d.first_byte("a/m", True) == (30.0, False)
    for _ in range(4):
        d.record("a/m", True, 0.2)
    assert d.first_byte("a/m", True) == (30.0, False)  # 4 < min_samples
    d.record("a/m", True, 0.2)
    assert d.first_byte("a/m", True) == (1.0, True)  # p99 0.2 s × 4 = 0.8 s, held up by the 1 s floor


def test_the_deadline_is_the_percentile_times_the_factor_bounded_by_the_floor_and_the_timeout() -> None:
    clock = FakeClock()
    d = _deadlines(clock, floor=0.5)
    for v in (0.1, 0.1, 0.1, 0.1, 0.3):
        d.record("a/m", True, v)
    assert d.first_byte("a/m", True) == pytest.approx((1.2, True))  # p99 of five = the largest, 0.3 s × 4
    fast = _deadlines(clock, floor=1.0)
    for _ in range(5):
        fast.record("a/m", True, 0.05)
    assert fast.first_byte("a/m", True) == (1.0, True)  # 0.2 s learned, held up by the floor
    slow = _deadlines(clock)
    for _ in range(5):
        slow.record("a/m", True, 9.0)
    assert slow.first_byte("a/m", True) == (30.0, False)  # 36 s learned: the configured timeout bounds it
    assert d.first_byte("a/m", False) == (30.0, False)  # streams and non-streamed answers are learned apart
    assert d.first_byte("b/m", True) == (30.0, False)  # and per target


def test_old_answers_are_forgotten_and_the_configured_timeout_returns() -> None:
    clock = FakeClock()
    d = _deadlines(clock, floor=0.1)
    for _ in range(5):
        d.record("a/m", True, 0.2)
    assert d.first_byte("a/m", True)[1]
    clock.advance(61.0)
    assert d.first_byte("a/m", True) == (30.0, False)


def test_a_larger_requested_output_stretches_a_non_streamed_deadline() -> None:
    clock = FakeClock()
    d = _deadlines(clock, floor=0.1)
    for _ in range(5):
        d.record("a/m", False, 1.0, size=100)
    assert d.first_byte("a/m", False, 100) == pytest.approx((4.0, True))
    assert d.first_byte("a/m", False, 50) == pytest.approx((4.0, True))  # never shorter than what is normal
    assert d.first_byte("a/m", False, 400) == pytest.approx((16.0, True))
    assert d.first_byte("a/m", False, 1000) == (30.0, False)
    assert requested_size({"max_tokens": 7}) == 7 and requested_size({"max_tokens": True}) is None


def test_disabled_learning_always_gives_the_configured_timeout() -> None:
    clock = FakeClock()
    d = _deadlines(clock, enabled=False)
    for _ in range(10):
        d.record("a/m", True, 0.1)
    assert d.first_byte("a/m", True) == (30.0, False)


async def test_a_hang_is_cut_by_the_learned_deadline_and_the_decision_counts_it(
    make_env: Callable[..., Awaitable[Env]],
) -> None:
    records: list[Decision] = []
    env = await make_env(forward_decision=records.append)
    # the conftest's first_byte_timeout is 1 s: a 0.1 s floor lets the learned deadline be visibly shorter
    st = env.app[DATA_STATE]
    st.deadlines.floor, st.deadlines.min_samples = 0.1, 3
    for _ in range(3):
        stream = await env.aclient.chat.completions.create(
            model="main", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        [c async for c in stream]
    learned, is_learned = st.deadlines.first_byte("oa/gpt-x", True)
    assert is_learned and learned < 1.0
    env.sim.set_fault("oa", "hang")
    await env.sim.tick()
    stream = await env.aclient.chat.completions.create(
        model="main", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert "ob/gpt-x" in text
    last = records[-1]
    assert last.attempts[0] == ("oa/gpt-x", "deadline_cut", None)
    assert last.attempts[1][:2] == ("ob/gpt-x", "ok")
    assert env.rt.sink.classes("oa/gpt-x")[-1] == "timeout"  # the breaker sees a timeout, as before
    [obs] = [o for o in env.rt.sink.observations if o.target == "oa/gpt-x" and str(o.error_class) == "timeout"]
    assert "learned first-byte deadline" in obs.detail


async def test_the_last_candidate_is_not_cut_by_its_learned_deadline(
    make_env: Callable[..., Awaitable[Env]],
) -> None:
    """Both targets learned a 0.1 s deadline; the primary hangs and the other answers after 0.4 s. The primary is
    cut by its learned deadline; the other is the last candidate, so it gets first_byte_timeout (1 s here) and
    answers, instead of being cut too and the client getting a 503."""
    records: list[Decision] = []
    env = await make_env(forward_decision=records.append)
    st = env.app[DATA_STATE]
    st.deadlines.floor, st.deadlines.min_samples = 0.1, 3
    for target in ("oa/gpt-x", "ob/gpt-x"):
        for _ in range(3):
            st.deadlines.record(target, True, 0.01)
        assert st.deadlines.first_byte(target, True) == (0.1, True)
    env.sim.set_fault("oa", "hang")
    env.sim.set_fault("ob", "LATENCY", seconds=0.4)
    await env.sim.tick()
    stream = await env.aclient.chat.completions.create(
        model="main", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert "ob/gpt-x" in text
    last = records[-1]
    assert last.attempts[0] == ("oa/gpt-x", "deadline_cut", None)
    assert last.attempts[1][:2] == ("ob/gpt-x", "ok")


async def test_a_responses_request_cut_by_a_learned_deadline_is_counted_as_such(
    make_env: Callable[..., Awaitable[Env]],
) -> None:
    """Every client API's decision names a learned-deadline cut `deadline_cut`, not just chat's."""
    records: list[Decision] = []
    env = await make_env(forward_decision=records.append)
    st = env.app[DATA_STATE]
    st.deadlines.floor, st.deadlines.min_samples = 0.1, 3
    for _ in range(3):
        st.deadlines.record("oa/gpt-x", False, 0.01)
    env.sim.set_fault("oa", "hang")
    await env.sim.tick()
    answer = await env.aclient.responses.create(model="main", input="hi")
    assert "ob/gpt-x" in answer.output_text
    last = records[-1]
    assert last.api == "responses"
    assert last.attempts[0] == ("oa/gpt-x", "deadline_cut", None)
    assert last.attempts[1][:2] == ("ob/gpt-x", "ok")
