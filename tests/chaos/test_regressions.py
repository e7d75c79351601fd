"""Regression tests for bugs the chaos suite found in other modules (each fix is small; see docs/reliability.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.breaker import Breaker
from controlplane.config import BreakerConfig
from controlplane.domain import ErrorClass, Observation, Source, State

E = ErrorClass
AT = datetime(2026, 1, 1, tzinfo=UTC)


def _state(b: Breaker) -> State:
    return b.state  # (a call, so mypy does not narrow the state across moves)


def _obs(cls: ErrorClass) -> Observation:
    return Observation(target="p/m", at=AT, source=Source.PROBE, kind="completion", error_class=cls)


def test_half_open_with_a_pressure_trial_then_a_success_reopens_instead_of_wedging() -> None:
    # Found by test_each_catalogue_fault_alone_end_to_end[AN-MID]: trial 1 met `overloaded` (pressure, no verdict),
    # trial 2 succeeded, 1 of 2 successes: the breaker admitted nothing more and stayed half_open for good.
    b = Breaker("p/m", BreakerConfig(half_open_trials=2, half_open_successes=2, consecutive_failures=1), 0.0)
    b.record(_obs(E.SERVER_ERROR), 0.0)
    assert _state(b) is State.OPEN
    b.poll(100.0)
    assert _state(b) is State.HALF_OPEN
    assert b.record(_obs(E.OVERLOADED), 100.0) == ()
    moves = b.record(_obs(E.OK), 101.0)
    assert [(t.new, t.reason) for t in moves] == [(State.OPEN, "trials_exhausted")]
    assert not b.admits()
    b.poll(10_000.0)  # the next half_open gets fresh trials
    assert _state(b) is State.HALF_OPEN and b.admits()


def test_an_ok_that_is_not_a_recheck_does_not_lift_a_withdrawal() -> None:
    # Found by test_each_catalogue_fault_alone_end_to_end[CAT-1]: the catalogue probe saw the model gone and, in the
    # same batch, the completion probe (run alongside) answered ok: the target went withdrawn → half_open at once.
    b = Breaker("p/m", BreakerConfig(withdrawn_recheck=30.0), 0.0)
    b.record(_obs(E.MODEL_GONE), 10.0)
    assert b.state is State.WITHDRAWN
    assert b.record(_obs(E.OK), 10.0) == ()
    assert b.state is State.WITHDRAWN and not b.should_probe(20.0)
    (move,) = b.record(_obs(E.OK), 40.0)  # the recheck, when due, still brings it back
    assert (move.new, move.reason) == (State.HALF_OPEN, "recheck_succeeded")


def test_a_key_in_the_wrong_field_is_not_printed_by_the_config_error() -> None:
    # Found by test_config_with_any_field_set_to_anything_gives_config_error_or_config: validation messages echo
    # the rejected value, which after ${VAR} expansion is the secret itself.
    import pytest

    from controlplane.config_loader import parse_config
    from controlplane.errors import ConfigError

    text = "providers:\n  - {id: a, adapter: openai, base_url: '${OPENAI_API_KEY}', models: [{name: m}]}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={"OPENAI_API_KEY": "sk-live-0123456789"})
    assert "sk-live-0123456789" not in str(info.value) and "${OPENAI_API_KEY}" in str(info.value)
    assert info.value.field == "providers.a.base_url"


async def test_malformed_request_logs_one_line_without_the_offending_bytes(caplog: pytest.LogCaptureFixture) -> None:
    # Found by test_sentinel_secrets_…: an oversized Authorization header put its token (and a traceback) in the
    # serve log through aiohttp's "Error handling request" record. Every Turnout listener uses GuardedAppRunner.
    import asyncio
    import logging

    from aiohttp import web

    from controlplane.api.runner import GuardedAppRunner
    from tests.support import free_port

    runner = GuardedAppRunner(web.Application(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-secret-token" + b"a" * 20_000 + b"\r\n\r\n"
            )
            answer = await reader.read()  # the listener answers and closes
            writer.close()
    finally:
        await runner.cleanup()
    assert answer.split()[1] == b"431" and b"sk-secret-token" not in answer
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING and records[0].exc_info is None
    assert "sk-secret-token" not in records[0].getMessage() and "LineTooLong" in records[0].getMessage()
