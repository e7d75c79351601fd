"""The decision log: one row per request (never the prompt or completion), cost from prices, the usage API."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import openai
import pytest
from aiohttp import web
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import Engine, create_engine, select, text
from sqlmodel import Session

from controlplane.api.usage import install
from controlplane.decisions import Decision, DecisionLog, DecisionRow, summarise
from dataplane.proxy import DATA_STATE
from tests.dataplane.conftest import Env, start_app
from tests.fakes import FakeClock
from tests.support import require_integration

pytestmark = pytest.mark.integration

MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "a secret prompt"}]


async def test_requests_leave_rows_with_attempts_tokens_and_cost_and_the_usage_api_sums_them(
    make_env: Callable[..., Awaitable[Env]], tmp_path: Path
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    env = await make_env(decision_engine=engine)
    await env.aclient.chat.completions.create(model="main", messages=MSG, user="team-a")
    env.sim.set_fault("oa", "overloaded")
    await env.aclient.chat.completions.create(model="main", messages=MSG, extra_headers={"x-turnout-tag": "team-b"})
    stream = await env.aclient.chat.completions.create(model="main", messages=MSG, stream=True, user="team-a")
    [c async for c in stream]
    env.sim.set_fault("ob", "overloaded")
    with pytest.raises(openai.InternalServerError):
        await env.aclient.chat.completions.create(model="main", messages=MSG, user="team-b")
    log = env.app[DATA_STATE].decisions
    assert log is not None
    assert await log.flush() == 4

    with Session(engine) as s:
        rows = s.execute(select(DecisionRow).order_by(DecisionRow.id)).scalars().all()  # type: ignore[arg-type]
    assert [(r.target, r.outcome, r.n_attempts, r.tag) for r in rows] == [
        ("oa/gpt-x", "ok", 1, "team-a"),
        ("ob/gpt-x", "ok", 2, "team-b"),
        ("ob/gpt-x", "ok", 2, "team-a"),
        (None, "exhausted", 2, "team-b"),
    ]
    first = rows[0]
    assert first.tokens_in > 0 and first.tokens_out > 0
    assert first.cost_usd == pytest.approx((first.tokens_in * 2 + first.tokens_out * 8) / 1e6)  # oa's prices
    assert rows[2].stream and rows[2].tokens_out > 0  # usage read from the stream even though the client did not ask
    assert '"overloaded"' in rows[1].attempts
    dump = repr([r.model_dump() for r in rows])
    assert "secret prompt" not in dump and "Hello from" not in dump  # never the prompt or the completion

    control = web.Application()
    install(control, engine, env.rt.clock)
    runner, port = await start_app(control)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/api/v1/usage", params={"by": "tag", "window": "1h"}) as r:
                assert r.status == 200
                usage = await r.json()
            async with s.get(f"http://127.0.0.1:{port}/api/v1/usage", params={"by": "colour"}) as r:
                assert r.status == 400 and (await r.json())["error"]["param"] == "by"
            async with s.get(f"http://127.0.0.1:{port}/api/v1/usage", params={"window": "soon"}) as r:
                assert r.status == 400 and (await r.json())["error"]["param"] == "window"
            async with s.get(f"http://127.0.0.1:{port}/api/v1/usage", params={"by": "target"}) as r:
                by_target = {row["target"]: row for row in (await r.json())["rows"]}
    finally:
        await runner.cleanup()
    by_tag = {row["tag"]: row for row in usage["rows"]}
    assert by_tag["team-a"]["requests"] == 2 and by_tag["team-a"]["errors"] == 0
    assert (
        by_tag["team-b"]["requests"] == 2 and by_tag["team-b"]["errors"] == 1 and by_tag["team-b"]["failed_over"] == 2
    )
    assert usage["total"]["requests"] == 4
    assert usage["total"]["cost_usd"] == pytest.approx(sum(r.cost_usd for r in rows), abs=1e-6)
    assert by_target["ob/gpt-x"]["requests"] == 2
    engine.dispose()


async def test_rows_past_the_retention_are_pruned(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    clock = FakeClock()
    log = DecisionLog(engine, clock, retention_s=3600)
    log.ensure_schema()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for age_h in (0, 2, 5):
        log.record(
            Decision(
                at=now - timedelta(hours=age_h),
                route="main",
                target="oa/gpt-x",
                outcome="ok",
                status=200,
                stream=False,
                attempts=[("oa/gpt-x", "ok", 200)],
            )
        )
    assert await log.flush() == 3
    assert log.prune(now) == 2
    with Session(engine) as s:
        assert len(s.execute(select(DecisionRow)).all()) == 1
    engine.dispose()


async def test_rows_written_by_the_log_are_byte_for_byte_what_the_orm_writes(tmp_path: Path) -> None:
    """The log writes with the driver's executemany (bench/dataplane); stored values must not change form."""
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    log = DecisionLog(engine, FakeClock(), retention_s=86400)
    log.ensure_schema()
    d = Decision(
        at=datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC),
        route="main",
        target="oa/gpt-x",
        outcome="ok",
        status=200,
        stream=True,
        attempts=[("ob/gpt-x", "overloaded", 529), ("oa/gpt-x", "ok", 200)],
        tokens_in=12,
        tokens_out=3,
        cost_usd=0.000123,
        latency_s=0.25,
        ttft_s=None,
        tag="team-ä",
        table_version=7,
    )
    log.record(d)
    assert await log.flush() == 1
    with Session(engine) as s:
        s.add(
            DecisionRow(
                at=d.at,
                route=d.route,
                tag=d.tag,
                target=d.target,
                outcome=d.outcome,
                status=d.status,
                stream=d.stream,
                n_attempts=2,
                attempts='[["ob/gpt-x","overloaded",529],["oa/gpt-x","ok",200]]',
                tokens_in=12,
                tokens_out=3,
                cost_usd=0.000123,
                latency_s=0.25,
                ttft_s=None,
                table_version=7,
            )
        )
        s.commit()
    with engine.connect() as conn:
        raw = conn.exec_driver_sql("SELECT * FROM dataplane_decisions ORDER BY id").fetchall()
    assert [r[1:] for r in raw[:1]] == [r[1:] for r in raw[1:]]  # same text, same numbers, same booleans
    with Session(engine) as s:
        first = s.execute(select(DecisionRow).order_by(DecisionRow.id)).scalars().first()  # type: ignore[arg-type]
    assert first is not None and first.at.replace(tzinfo=UTC) == d.at and first.stream is True
    engine.dispose()


def _postgres_engine(schema: str) -> Engine | None:
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", connect_timeout=2, autocommit=True) as c:
            c.execute(f"CREATE SCHEMA {schema}")
    except Exception:
        return None
    return create_engine(
        "postgresql+psycopg://postgres@127.0.0.1/test", connect_args={"options": f"-csearch_path={schema}"}
    )


@pytest.mark.postgres
async def test_decision_log_and_summary_work_on_postgres() -> None:
    schema = f"h6_decisions_{uuid.uuid4().hex[:8]}"  # our own schema: other tests share the database
    engine = _postgres_engine(schema)
    require_integration(engine is not None, "PostgreSQL on 127.0.0.1:5432 (user postgres, database test) not reachable")
    assert engine is not None
    try:
        log = DecisionLog(engine, FakeClock(), retention_s=86400)
        log.ensure_schema()
        now = datetime(2026, 1, 1, tzinfo=UTC)
        for target, outcome, n in (("oa/gpt-x", "ok", 1), ("ob/gpt-x", "ok", 2), (None, "exhausted", 2)):
            log.record(
                Decision(
                    at=now,
                    route="main",
                    target=target,
                    outcome=outcome,
                    status=200,
                    stream=False,
                    attempts=[("oa/gpt-x", "overloaded", 503)] * n,
                    tokens_in=10,
                    tokens_out=5,
                    cost_usd=0.5,
                    tag="t",
                )
            )
        assert await log.flush() == 3
        with Session(engine) as s:
            stored = s.execute(select(DecisionRow)).scalars().all()
        assert {r.at for r in stored} == {now} and {r.n_attempts for r in stored} == {1, 2}
        (row,) = summarise(engine, "route", now - timedelta(hours=1))
        assert row["requests"] == 3 and row["errors"] == 1 and row["failed_over"] == 2 and row["cost_usd"] == 1.5
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()
