"""Process faults against `turnout serve` as a child process.

SIGKILL at several points while probes write, tables are published and webhooks are dispatched (a provider
churning under a probabilistic fault keeps all three busy), then restart: breaker states, the table version
sequence, events and undelivered webhooks survive, on SQLite and on PostgreSQL.

A full disk (the child's RLIMIT_FSIZE lowered to one byte with prlimit: every write that grows a file fails,
as on a full file system) → the process keeps serving the last durable table and the data plane, reports
not-ready on /readyz, logs one clear error rather than one per write, and recovers when space returns.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import create_engine, text

from adapters.sim import Simulator
from tests.chaos.conftest import ADMIN, OA, OB, SOAK, sim_config
from tests.chaos.proc import Serve, pg_database, until
from tests.support import require_integration
from tests.webhooks.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST_PROBES = {
    "interval": "300ms",
    "jitter": 0.1,
    "timeout": "2s",
    "kinds": {
        "catalogue": {"interval": "300ms"},
        "completion": {"interval": "300ms"},
        "status_page": {"enabled": False},
    },
}
BREAKER = {
    "window": "5s",
    "min_calls": 3,
    "consecutive_failures": 2,
    "open_duration": "1s",
    "open_duration_max": "2s",
    "half_open_trials": 2,
    "half_open_successes": 1,
    "withdrawn_recheck": "1s",
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator.from_yaml(sim_config())  # real clock: the child process probes in real time
    await s.start()
    yield s
    await s.stop()


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def _deliveries(url: str, endpoint: str) -> list[tuple[Any, ...]]:
    """(delivery id, event id, status) of one endpoint's deliveries, in order."""
    return _rows(
        url, f"SELECT id, event_id, status FROM webhook_deliveries WHERE endpoint_id = '{endpoint}' ORDER BY seq"
    )


async def _register(serve: Serve, http: aiohttp.ClientSession, receiver: Receiver) -> str:
    async with http.post(
        f"{serve.control}/api/v1/webhooks", json={"url": receiver.url}, headers={"Authorization": f"Bearer {ADMIN}"}
    ) as r:
        assert r.status == 201, await r.text()
        created = await r.json()
    receiver.secret = created["secret"]
    return str(created["id"])


async def _kill_restart_cycle(sim: Simulator, tmp_path: Path, db_url: str) -> None:
    serve = Serve(sim, tmp_path, db_url, probes=FAST_PROBES, breaker=BREAKER)
    receiver = await Receiver().start()
    serve.start()
    kills = 5 if SOAK else 3
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            await until(lambda: serve.ready(http), 60, "first start")
            endpoint = await _register(serve, http, receiver)
            sim.set_fault("oa", "server_error", probability=0.6)  # oa/gpt-x churns: open, half_open, closed, …
            sim.set_fault("an", "region_blocked")  # an/claude-x withdrawn, and must stay so across every crash

            async def withdrawn_stored() -> bool:  # on PostgreSQL the leader may still be taking its lease
                status, table = await serve.get(http, "/api/v1/table")
                state = table.get("targets", {}).get("an/claude-x", {}).get("state") if status == 200 else None
                return state == "withdrawn"

            await until(withdrawn_stored, 60, "an/claude-x withdrawn before the first kill")
            seen_versions: list[int] = []
            for i in range(kills):
                # let it work for a while (different each round, so the kill lands mid-write at different points)
                await asyncio.sleep(0.8 + 0.45 * i)
                before = _rows(db_url, "SELECT max(version) FROM published_tables")[0][0]
                serve.kill()
                after_kill = _rows(db_url, "SELECT max(version) FROM published_tables")[0][0]
                assert after_kill >= before
                serve.start()
                await until(lambda: serve.ready(http), 60, f"restart {i + 1}")
                status, table = await serve.get(http, "/api/v1/table")
                assert status == 200 and table["version"] >= after_kill  # never back in versions
                assert table["targets"]["an/claude-x"]["state"] == "withdrawn"  # the state came back from the store
                seen_versions.append(table["version"])
            # one more kill exactly while a delivery is in flight: the receiver holds the request and Turnout dies
            killed = asyncio.Event()
            held = len(receiver.got)

            def kill_mid_delivery(n: int) -> None:
                if n > held and not killed.is_set():
                    serve.kill()
                    killed.set()

            receiver.on_receive = kill_mid_delivery
            try:
                async with http.post(
                    f"{serve.control}/api/v1/webhooks/{endpoint}/test", headers={"Authorization": f"Bearer {ADMIN}"}
                ) as r:
                    assert r.status in (200, 201, 202), await r.text()
            except aiohttp.ClientError:
                assert killed.is_set()  # a churn event's delivery arrived first and the kill landed before our answer
            await asyncio.wait_for(killed.wait(), 30)
            receiver.on_receive = None
            serve.start()
            await until(lambda: serve.ready(http), 60, "restart after a kill mid-delivery")
            # the churn stops; every event must reach the receiver exactly once after de-duplication
            sim.clear_faults()
            sim.set_fault("an", "region_blocked")

            async def settled() -> bool:
                # Quiet first: oa/gpt-x may still be on its way back to closed when the faults clear, and its
                # recovery events come after that; "settled" before them would compare against a moving store.
                status, table = await serve.get(http, "/api/v1/table")
                last = _rows(db_url, "SELECT type FROM events WHERE subject = 'oa/gpt-x' ORDER BY id DESC LIMIT 1")
                if (
                    status != 200
                    or table["targets"]["oa/gpt-x"]["state"] != "closed"
                    or last not in ([], [("target.recovered",)])
                ):
                    return False
                rows = _deliveries(db_url, endpoint)
                got = {r.msg_id for r in receiver.unique()}
                return bool(rows) and all(s == "delivered" for _, _, s in rows) and got >= {str(i) for i, _, _ in rows}

            await until(settled, 60, "oa/gpt-x closed again and every delivery made")
            exit_code = serve.stop()
        assert exit_code == 0, serve.log[-3000:]
    finally:
        serve.stop()
        await receiver.stop()

    final = _deliveries(db_url, endpoint)  # as the stopped process left them
    assert all(s == "delivered" for _, _, s in final), [r for r in final if r[2] != "delivered"]

    versions = [v for (v,) in _rows(db_url, "SELECT version FROM published_tables ORDER BY version")]
    assert versions == sorted(set(versions)) and seen_versions == sorted(seen_versions)
    event_ids = [i for (i,) in _rows(db_url, "SELECT id FROM events ORDER BY id")]
    assert len(event_ids) == len(set(event_ids))
    # the outbox: every event stored since registration has its delivery row (committed with the event)
    registered_after = min(e for _, e, _ in final)
    stored_since = {i for i in event_ids if i >= registered_after}
    missing = sorted(stored_since - {e for _, e, _ in final})
    assert not missing, _rows(
        db_url, f"SELECT id, type, subject FROM events WHERE id IN ({','.join(map(str, missing))})"
    )
    # each event arrived once per webhook-id, in event order, and the body is the stored event
    unique = receiver.unique()
    assert [r.body["id"] for r in unique] == sorted(r.body["id"] for r in unique)
    assert {r.body["id"] for r in unique} == stored_since
    states = [s for (s,) in _rows(db_url, "SELECT count(*) FROM events WHERE type = 'target.state_changed'")]
    assert states[0] >= 1
    if db_url.startswith("sqlite"):
        assert _rows(db_url, "PRAGMA integrity_check") == [("ok",)]
    assert "Traceback" not in serve.log, serve.log[-3000:]


async def test_sigkill_mid_work_then_restart_loses_nothing_sqlite(sim: Simulator, tmp_path: Path) -> None:
    await _kill_restart_cycle(sim, tmp_path, f"sqlite:///{tmp_path / 'turnout.db'}")


@pytest.mark.postgres
async def test_sigkill_mid_work_then_restart_loses_nothing_postgres(sim: Simulator, tmp_path: Path) -> None:
    with pg_database() as url:
        require_integration(url is not None, "PostgreSQL not reachable at 127.0.0.1:5432")
        assert url is not None
        await _kill_restart_cycle(sim, tmp_path, url)


async def test_full_disk_keeps_serving_the_last_table_reports_not_ready_and_logs_once(
    sim: Simulator, tmp_path: Path
) -> None:
    serve = Serve(sim, tmp_path, f"sqlite:///{tmp_path / 'turnout.db'}", probes=FAST_PROBES, breaker=BREAKER)
    serve.start()
    assert serve.proc is not None
    pid = serve.proc.pid
    receiver = await Receiver().start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            await until(lambda: serve.ready(http), 60, "start")
            await _register(serve, http, receiver)  # the dispatcher has deliveries to record while the disk is full
            status, before = await serve.get(http, "/api/v1/table")
            assert status == 200 and before["targets"][OA]["state"] == "closed"
            soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))  # the disk is full from now on
            log_mark = len(serve.log)
            sim.set_fault("oa", "region_blocked")  # health wants to change: a withdrawal that cannot be stored

            async def not_ready() -> bool:
                return (await serve.get(http, "/readyz"))[0] == 503

            await until(not_ready, 20, "/readyz 503 while the store cannot write")
            chat = {"model": "pair", "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(6):  # a few seconds of failing writes: probes, ticks, snapshots, decision log, webhooks
                async with http.post(f"{serve.data}/chat/completions", json=chat) as r:
                    assert r.status == 200, await r.text()
                await asyncio.sleep(0.5)
            assert serve.proc.poll() is None, serve.log[-3000:]  # still running
            status, during = await serve.get(http, "/api/v1/table")
            assert status == 200
            # the last durable table is served: a table that could not be stored is not published
            assert during["version"] == before["version"] and during["targets"][OA]["state"] == "closed"
            async with http.post(f"{serve.data}/chat/completions", json=chat) as r:
                assert r.status == 200, await r.text()  # the data plane keeps answering (oa fails over to ob)
            failed_log = serve.log[log_mark:]
            assert "Traceback" not in failed_log, failed_log[-3000:]
            errors = [ln for ln in failed_log.splitlines() if " ERROR " in ln]
            assert 1 <= len(errors) <= 3, "\n".join(errors[:20])  # one clear line (per writer), not one per write
            assert any("disk" in ln.lower() or "full" in ln.lower() or "store" in ln.lower() for ln in errors), (
                "\n".join(errors)
            )

            resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))  # space is back

            async def recovered() -> Any:
                status, t = await serve.get(http, "/api/v1/table")
                return status == 200 and t["targets"][OA]["state"] == "withdrawn" and await serve.ready(http)

            await until(recovered, 30, "recovery once the disk has space")
            status, events = await serve.get(http, "/api/v1/events?limit=100")
            assert any(e["type"] == "target.withdrawn" and e["subject"] == OA for e in events["events"])
            assert OB in (await serve.get(http, "/api/v1/table"))[1]["targets"]
            assert "Traceback" not in serve.log[log_mark:], serve.log[log_mark:][-3000:]
            got = await _eventually_delivered(receiver)
            assert "target.withdrawn" in got, got  # the withdrawal stored after recovery also went out
        assert serve.stop() == 0, serve.log[-3000:]
    finally:
        serve.stop()
        await receiver.stop()


async def _eventually_delivered(receiver: Receiver) -> list[str]:
    async def withdrawn() -> list[str] | None:
        got = [str(r.body.get("type")) for r in receiver.unique()]
        return got if "target.withdrawn" in got else None

    return list(await until(withdrawn, 30, "the withdrawal webhook"))
