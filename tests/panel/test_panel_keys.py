"""A panel route behind a client key: refused before any member is asked, limit headers on the answer, the whole
panel call's tokens and spend charged to the key, its id in the decision record."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import openai
import pytest
from sqlalchemy import create_engine, select
from sqlmodel import Session

from controlplane.clock import SystemClock
from controlplane.decisions import DecisionRow
from controlplane.keys import Ring, RingKey, hash_key
from controlplane.keys.tokens import new_key
from dataplane.keys import Caller, KeyGate
from dataplane.proxy import DATA_STATE
from tests.panel.conftest import MSG, Env

pytestmark = pytest.mark.integration


def _gate(env: Env, key: str, **limits: object) -> KeyGate:
    fields: dict[str, object] = dict(
        id=key.split("_")[1], name="team-a", key_hash=hash_key(key), routes=frozenset({"fusion"}), rpm=None, tpm=None,
        budget_usd=None, budget_period="day", expires_at=None, spent_usd=0.0,
        period_end=datetime(2100, 1, 1, tzinfo=UTC).timestamp(),
    )  # fmt: skip
    fields.update(limits)
    gate = KeyGate(None, SystemClock(), lambda: env.cfg.auth.data)
    gate.load(Ring(True, (RingKey(**fields),)))  # type: ignore[arg-type]
    env.app[DATA_STATE].keys = gate
    return gate


async def test_a_keyed_panel_call_is_charged_and_attributed_as_one_request(
    make_env: Callable[..., Awaitable[Env]], tmp_path: Path
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    env = await make_env(decision_engine=engine)
    key = new_key("panl0001")
    gate = _gate(env, key, rpm=10, tpm=1_000_000)
    client = openai.AsyncOpenAI(base_url=env.url, api_key=key, max_retries=0, timeout=20)
    raw = await client.chat.completions.with_raw_response.create(model="fusion", messages=MSG)
    reply = raw.parse()
    assert raw.headers["x-ratelimit-remaining-requests"] == "9"
    caller = await gate.identify({"authorization": f"Bearer {key}"})
    assert isinstance(caller, Caller) and caller.tokens is not None
    assert reply.usage is not None
    used = reply.usage.prompt_tokens + reply.usage.completion_tokens  # members, judge and synthesizer together
    assert used > 0 and caller.tokens.level <= 1_000_000 - used + 1  # refilled a little since, never more
    assert caller.spent_here > 0
    decisions = env.app[DATA_STATE].decisions
    assert decisions is not None
    await decisions.flush()
    with Session(engine) as s:
        (row,) = s.execute(select(DecisionRow)).scalars().all()
    assert (row.route, row.key_id) == ("fusion", "panl0001")
    engine.dispose()
    await client.close()


async def test_a_key_without_the_panel_route_is_refused_before_any_member_is_asked(env: Env) -> None:
    key = new_key("panl0002")
    _gate(env, key, routes=frozenset({"other"}))
    client = openai.AsyncOpenAI(base_url=env.url, api_key=key, max_retries=0, timeout=20)
    with pytest.raises(openai.PermissionDeniedError):
        await client.chat.completions.create(model="fusion", messages=MSG)
    assert env.sim.requests("oa") == 0 and env.judge.bodies == []
    await client.close()
