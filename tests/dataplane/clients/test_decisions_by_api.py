"""Every client API leaves one decision-log row naming it, with its attempts, tokens and cost; the usage summary
groups by API; the replication wire carries the API (an older replica's record without one is chat)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlmodel import Session

from controlplane.decisions import Decision, DecisionRow, summarise
from controlplane.scaleout.replication_api import decision_from_wire, decision_to_wire
from dataplane.state import DATA_STATE
from tests.dataplane.clients.conftest import ClientsEnv

pytestmark = pytest.mark.integration


async def test_each_client_api_is_named_in_the_decision_log(
    make_env: Callable[..., Awaitable[ClientsEnv]], tmp_path: Path
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    env = await make_env(decision_engine=engine)
    hi = [{"role": "user", "content": "hi"}]
    await env.oa.chat.completions.create(model="r-compat", messages=hi)  # type: ignore[arg-type]
    env.sim.set_fault("vl", "overloaded")
    await env.oa.responses.create(model="r-compat", input="hi")
    env.sim.clear_faults()
    await env.an.messages.create(model="r-anthropic", max_tokens=8, messages=hi)  # type: ignore[arg-type]
    await env.an.messages.count_tokens(model="r-anthropic", messages=hi)  # type: ignore[arg-type]
    await env.oa.embeddings.create(model="e-openai", input="hi")
    log = env.app[DATA_STATE].decisions
    assert log is not None
    await log.flush()  # the background writer may have written some already
    with Session(engine) as s:
        rows = s.execute(select(DecisionRow).order_by(DecisionRow.id)).scalars().all()  # type: ignore[arg-type]
    assert [(r.api, r.target, r.n_attempts, r.outcome) for r in rows] == [
        ("chat", "vl/gpt-x", 1, "ok"),
        ("responses", "oa/gpt-x", 2, "ok"),
        ("messages", "an/claude-x", 1, "ok"),
        ("count_tokens", "an/claude-x", 1, "ok"),
        ("embeddings", "oa/emb-x", 1, "ok"),
    ]
    assert rows[1].cost_usd > 0 and rows[2].tokens_in > 0 and rows[4].tokens_in > 0
    by_api = {g["api"]: g for g in summarise(engine, "api", datetime(2000, 1, 1, tzinfo=UTC))}
    assert set(by_api) == {"chat", "responses", "messages", "count_tokens", "embeddings"}
    assert by_api["responses"]["failed_over"] == 1


def test_the_replication_wire_carries_the_api() -> None:
    d = Decision(datetime(2026, 1, 1, tzinfo=UTC), "r", "a/b", "ok", 200, False, [("a/b", "ok", 200)], api="messages")
    assert decision_from_wire(decision_to_wire(d)).api == "messages"
    old = decision_to_wire(d)
    del old["api"]
    assert decision_from_wire(old).api == "chat"
