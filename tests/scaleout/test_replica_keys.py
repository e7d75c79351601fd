"""Client keys across replicas: a data replica reads the key ring from a control replica, learns a key made a moment
ago at once, a revocation within auth.data.refresh_interval, and spend recorded elsewhere within one ring read.
Request rates are per process (docs/dataplane.md, Client keys: what is exact and what is approximate)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from openai.types.chat import ChatCompletionMessageParam

from adapters.sim.simulator import Simulator
from controlplane.api.routes import install
from controlplane.clock import SystemClock
from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.decisions import Decision, DecisionLog
from controlplane.keys import Ring
from dataplane.keys import Caller, KeyGate, Refusal
from dataplane.proxy import build_data_app
from dataplane.replica import DataReplica
from tests.api.fakes import FakeRuntime, FakeTableSource, make_table
from tests.support import free_port, serve_app, two_fast_providers, until

pytestmark = pytest.mark.integration

ADMIN = "replica-keys-admin-token"
REFRESH_S = 0.3
MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


def _config(sim: Simulator) -> Config:
    import yaml

    text = yaml.safe_dump(
        {
            "auth": {
                "tokens": [{"token": ADMIN, "scope": "admin", "name": "ops"}],
                "data": {"refresh_interval": "300ms"},
            },
            "providers": sim.turnout_providers(),
            "routes": [{"name": "main", "targets": ["sim-openai/gpt-4o", "sim-anthropic/claude-sonnet-4"]}],
        }
    )
    return parse_config(text, env={})


@dataclass
class Pair:
    control: str
    data: str
    ctl: FakeRuntime
    replica: DataReplica
    http: aiohttp.ClientSession

    async def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.http.request(
            method, self.control + path, json=body, headers={"Authorization": f"Bearer {ADMIN}"}
        ) as r:
            assert r.status in (200, 201), await r.text()
            return await r.json()

    def client(self, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.data}/v1", api_key=key, max_retries=0)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async with two_fast_providers() as sim:
        cfg = _config(sim)
        ctl = FakeRuntime(tmp_path, SystemClock())
        ctl.config = cfg
        ctl.table_source = FakeTableSource(make_table(cfg, 1))
        app = web.Application()
        install(app, ctl)
        control_runner, control_port = await serve_app(app)
        control = f"http://127.0.0.1:{control_port}"
        replica = DataReplica(cfg, [control], token=ADMIN, first_table_timeout=5.0)
        await replica.start()
        gate = KeyGate(replica.fetch_ring, replica.clock, lambda: cfg.auth.data)
        data_runner, data_port = await serve_app(build_data_app(replica, keys=gate))
        async with aiohttp.ClientSession() as http:
            yield Pair(control, f"http://127.0.0.1:{data_port}", ctl, replica, http)
        await data_runner.cleanup()
        await replica.stop()
        await control_runner.cleanup()
        ctl.store.close()


async def _answers(client: openai.AsyncOpenAI) -> int:
    try:
        await client.chat.completions.create(model="main", messages=MSG)
        return 200
    except openai.APIStatusError as exc:
        return exc.status_code


async def test_a_replica_learns_a_new_key_at_once_and_a_revocation_within_the_refresh_interval(pair: Pair) -> None:
    assert await _answers(pair.client("unused")) == 200  # no key anywhere yet: anonymous (loopback)
    created = await pair.admin("POST", "/api/v1/keys", {"name": "team-a"})
    client = pair.client(created["key"])
    anon = pair.client("unused")

    async def anonymous_refused() -> bool:
        return await _answers(anon) == 401

    await until(anonymous_refused, timeout=5, what="keys required on the replica", interval=0.05)
    assert await _answers(client) == 200  # an unknown id re-reads the ring: no wait for the next refresh
    await pair.admin("DELETE", f"/api/v1/keys/{created['id']}")
    revoked_at = time.monotonic()

    async def refused() -> bool:
        return await _answers(client) == 401

    await until(refused, timeout=5, what="revocation on the replica", interval=0.05)
    assert time.monotonic() - revoked_at < REFRESH_S + 1.0


async def test_spend_recorded_elsewhere_reaches_the_replica_with_the_next_ring_read(pair: Pair) -> None:
    created = await pair.admin("POST", "/api/v1/keys", {"name": "team-a", "budget_usd": 0.5, "budget_period": "day"})
    client = pair.client(created["key"])
    assert await _answers(client) == 200
    # Another replica's reports land in the store: the decision log writes their spend with their records.
    log = DecisionLog(pair.ctl.store.engine, pair.ctl.clock, retention_s=86400)
    now = datetime.now(UTC)
    log.record(Decision(now, "main", "sim-openai/gpt-4o", "ok", 200, False, [], 1, 1, 0.75, key_id=created["id"]))
    await log.flush()

    async def over_budget() -> bool:
        return await _answers(client) == 429

    await until(over_budget, timeout=5, what="budget on the replica", interval=0.05)
    shown = await pair.admin("GET", f"/api/v1/keys/{created['id']}")
    assert shown["use"]["cost_usd"] >= 0.75


async def test_request_rates_are_counted_per_process(pair: Pair) -> None:
    created = await pair.admin("POST", "/api/v1/keys", {"name": "team-a", "rpm": 1})
    ring = Ring.from_wire(await pair.admin("GET", "/api/v1/keys/ring"))
    gates = [KeyGate(None, SystemClock(), lambda: pair.replica.config.auth.data) for _ in range(2)]
    for g in gates:
        g.load(ring)
    callers = [await g.identify({"authorization": f"Bearer {created['key']}"}) for g in gates]
    assert all(isinstance(c, Caller) for c in callers)
    first = [g.admit(c, "main") for g, c in zip(gates, callers, strict=True)]  # type: ignore[arg-type]
    assert not any(isinstance(a, Refusal) for a in first)  # each replica admits the key's whole rpm
    assert all(isinstance(g.admit(c, "main"), Refusal) for g, c in zip(gates, callers, strict=True))  # type: ignore[arg-type]


async def test_a_replica_restarted_while_no_control_replica_answers_checks_keys_against_its_kept_ring(
    pair: Pair,
) -> None:
    """The ring is kept beside the table (hashes and limits, never a key): a replica started while every control
    replica is unreachable admits the keys it knew and refuses the rest, instead of refusing everyone."""
    created = await pair.admin("POST", "/api/v1/keys", {"name": "team-a"})
    anon = pair.client("unused")

    async def anonymous_refused() -> bool:  # the replica read the ring with the key (and kept it)
        return await _answers(anon) == 401

    await until(anonymous_refused, timeout=5, what="keys required on the replica", interval=0.05)
    assert await _answers(pair.client(created["key"])) == 200
    ring_file = pair.replica.ring_file
    assert ring_file is not None and created["id"] in ring_file.read_text()
    assert created["key"] not in ring_file.read_text(), "the kept ring holds no key"

    dead = f"http://127.0.0.1:{free_port()}"  # no control replica answers there
    cfg = pair.replica.config
    again = DataReplica(cfg, [dead], token=ADMIN, first_table_timeout=0, table_file=str(pair.replica.table_file))
    await again.start()
    gate = KeyGate(again.fetch_ring, again.clock, lambda: cfg.auth.data)
    runner, port = await serve_app(build_data_app(again, keys=gate))
    try:
        assert again.table_from_disk
        for key, status in ((created["key"], 200), ("unused", 401), ("tk-" + "0" * 40, 401)):
            client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
            assert await _answers(client) == status, key
            await client.close()
    finally:
        await runner.cleanup()
        await again.stop()
