"""SIGKILL during a resumed stream (`resume_streams: true`) against `turnout serve` as a child process: the
decision records of the requests that finished before the kill (resumed ones, naming both targets) are all in
the store after the restart, exactly once; the restarted process resumes cut streams again and records them.

A record is written when its request ends (batched, off the hot path), so the request the kill interrupts
leaves none: its client saw the connection drop, not an answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import create_engine, text

from adapters.sim import Simulator
from tests.chaos.conftest import AN, OA, OB, sim_config
from tests.chaos.proc import Serve, until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUIET_PROBES = {
    "kinds": {"catalogue": {"enabled": False}, "completion": {"enabled": False}, "status_page": {"enabled": False}}
}
PATIENT_BREAKER = {"consecutive_failures": 50, "min_calls": 1000}  # the cut primary stays first for every request


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator.from_yaml(sim_config())  # real clock: the child process runs in real time
    await s.start()
    yield s
    await s.stop()


def _resumed(db_url: str) -> list[tuple[str, list[Any]]]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT target, attempts FROM dataplane_decisions WHERE outcome = 'resumed' ORDER BY id")
            )
            return [(r[0], json.loads(r[1])) for r in rows]
    finally:
        engine.dispose()


async def _serving(http: aiohttp.ClientSession, serve: Serve) -> bool:
    """Both ports up: /readyz on the control port and the data plane's listener."""
    if not await serve.ready(http):
        return False
    try:
        async with http.get(f"{serve.data}/models") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


async def _stream(http: aiohttp.ClientSession, serve: Serve) -> str:
    body = {
        "model": "main",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "turnout": {"order": [OA, OB, AN]},  # oa first, whatever its failures did to the ranking
    }
    async with http.post(f"{serve.data}/chat/completions", json=body) as r:
        assert r.status == 200
        raw = (await r.read()).decode()
    text_ = ""
    for line in raw.splitlines():
        if line.startswith("data: {"):
            doc = json.loads(line[6:])
            assert "error" not in doc, doc
            for c in doc.get("choices", []):
                text_ += (c.get("delta") or {}).get("content") or ""
    return text_


async def test_sigkill_during_a_resume_loses_no_finished_requests_record(sim: Simulator, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'turnout.db'}"
    routes = [{"name": "main", "targets": [OA, OB, AN], "resume_streams": True}]
    serve = Serve(sim, tmp_path, db_url, routes=routes, probes=QUIET_PROBES, breaker=PATIENT_BREAKER)
    sim.set_fault("oa", "reset")  # every stream from oa is cut after its first words
    sim.set_fault("oa", "slow_tokens", rate=50)  # in separate reads: those words reach the client first
    serve.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            await until(lambda: _serving(http, serve), 60, "first start")
            for _ in range(3):
                assert await _stream(http, serve) == "Hello from ob/gpt-x"  # oa's "Hello from ", ob's continuation
            finished = await until(lambda: len(_resumed(db_url)) == 3 and _resumed(db_url), 30, "3 records stored")
            assert all(t == OB and [a[0] for a in att] == [OA, OB] for t, att in finished)
            # the next continuation hangs at ob: the kill lands while the stream is being resumed
            sim.set_fault("ob", "hang")
            before = sim.requests("ob")
            inflight = asyncio.create_task(_stream(http, serve))
            await until(lambda: sim.requests("ob") > before, 30, "the continuation reached ob")
            serve.kill()
            with pytest.raises(aiohttp.ClientError):
                await inflight
            sim.clear_faults("ob")
            serve.start()
            await until(lambda: _serving(http, serve), 60, "restart")
            assert _resumed(db_url) == finished  # every finished request's record, once, as it was
            assert await _stream(http, serve) == "Hello from ob/gpt-x"
        assert serve.stop() == 0, serve.log[-3000:]
    finally:
        serve.stop()
    after = _resumed(db_url)
    assert after[:3] == finished and len(after) == 4 and after[3][0] == OB
    assert "Traceback" not in serve.log, serve.log[-3000:]
