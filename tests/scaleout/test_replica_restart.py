"""Static stability across a data replica's own restart (issue 18 item 6): restarted while every control replica
is unreachable, it opens its port at once on the table it kept on local disk, says so in /readyz and a metric,
and sends nothing to the target that table had withdrawn. Real parts on loopback: the provider simulator, a
control replica's table endpoint, the data plane's listener, the official openai SDK as the client."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import pytest
import yaml

from adapters.sim.simulator import Simulator
from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.domain import ErrorClass, Observation, Source, State
from controlplane.health import HealthModel
from controlplane.publisher import TablePublisher
from dataplane.http.listener import start_listener
from dataplane.proxy import build_data_app
from dataplane.replica import DataReplica
from tests.fakes import FakeClock
from tests.scaleout.helpers import ADMIN, StubControl, StubControlRuntime
from tests.support import free_port, two_fast_providers

pytestmark = [pytest.mark.integration]

ROUTE = "main"
PRIMARY, SECOND = "sim-openai/gpt-4o", "sim-anthropic/claude-sonnet-4"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with two_fast_providers() as s:
        yield s


def _config(sim: Simulator, table_file: Path) -> Config:
    return parse_config(
        yaml.safe_dump(
            {
                "server": {"data": {"host": "127.0.0.1", "port": free_port()}},
                "auth": {"public_read": True, "tokens": [{"token": ADMIN, "scope": "admin", "name": "ops"}]},
                "providers": sim.turnout_providers(),
                "routes": [{"name": ROUTE, "targets": [PRIMARY, SECOND]}],
                "dataplane": {"table_file": str(table_file)},
            }
        )
    )


async def test_a_replica_restarted_during_a_control_plane_outage_serves_its_kept_table(
    sim: Simulator, tmp_path: Path
) -> None:
    kept = tmp_path / "replica-table.json"
    cfg = _config(sim, kept)
    # The control plane's last word before the outage: the primary is withdrawn (a region block).
    health = HealthModel(cfg, FakeClock(), rerank_interval=0.0)
    health.ingest(
        Observation(
            target=PRIMARY,
            at=health.table.published_at,
            source=Source.PROBE,
            kind="completion",
            error_class=ErrorClass.REGION_BLOCKED,
            status=403,
        )
    )
    table = health.table
    assert table.targets[PRIMARY].state is State.WITHDRAWN and table.routes[ROUTE].primary is not None
    control = await StubControl(StubControlRuntime(cfg, TablePublisher(table))).start()
    first = DataReplica(cfg, [control.url], token=ADMIN)
    await first.start()
    assert first.table_source.current().version == table.version and not first.table_from_disk
    await first.stop()
    assert kept.exists(), "the adopted table is kept on disk"
    await control.stop()  # the outage: no control replica answers from here on

    again = DataReplica(cfg, [control.url], token=ADMIN, first_table_timeout=10.0)
    started = time.monotonic()
    await again.start()
    assert time.monotonic() - started < 2.0, "the port opens at once, not after first_table_timeout"
    listener = await start_listener(
        build_data_app(again, serve_metrics=True, readiness=again.readiness), "127.0.0.1", cfg.server.data.port
    )
    base = f"http://127.0.0.1:{cfg.server.data.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/readyz") as r:
                body = await r.json()
                assert r.status == 200, body
            assert body["table_source"] == "disk" and body["table_version"] == table.version
            assert body["control_connected"] is False
            async with http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}) as r:
                assert "turnout_replica_table_from_disk 1.0" in await r.text()

        primary_before = sim.requests("sim-openai")
        client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=ADMIN, max_retries=0)
        for _ in range(20):
            answer = await client.chat.completions.create(
                model=ROUTE, messages=[{"role": "user", "content": "hi"}], max_tokens=5
            )
            assert answer.choices[0].message.content
        await client.close()
        assert sim.requests("sim-openai") == primary_before, "nothing went to the target the kept table withdrew"
        assert sim.requests("sim-anthropic") >= 20
    finally:
        await listener.cleanup()
        await again.stop()


async def test_a_replica_with_no_kept_table_still_waits_and_then_serves_empty(tmp_path: Path) -> None:
    from tests.scaleout.helpers import small_config

    cfg = small_config(f'dataplane: {{table_file: "{tmp_path / "none.json"}"}}')
    r = DataReplica(cfg, [f"http://127.0.0.1:{free_port()}"], token=ADMIN, first_table_timeout=0.2)
    await r.start()
    try:
        ready, detail = r.readiness()
        assert not ready and detail["table_source"] == "none"
    finally:
        await r.stop()


async def test_an_unreadable_kept_table_is_ignored(tmp_path: Path) -> None:
    from tests.scaleout.helpers import small_config

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    cfg = small_config(f'dataplane: {{table_file: "{bad}"}}')
    r = DataReplica(cfg, [f"http://127.0.0.1:{free_port()}"], token=ADMIN, first_table_timeout=0)
    await r.start()
    try:
        assert r.table_source.base.version == 0 and not r.table_from_disk
    finally:
        await r.stop()
