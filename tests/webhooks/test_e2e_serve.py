"""End to end: `turnout serve` + the provider simulator + a receiver verifying with `standardwebhooks`.

A model is withdrawn in the simulator; the receiver answers 500 twice, and on the next request Turnout is
SIGKILLed before it can record the delivery. After a restart, the receiver (de-duplicating by webhook-id)
holds every stored event exactly once, in event order, and nothing committed was lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from adapters.sim.simulator import Simulator
from tests.support import free_port, stop_process, two_fast_providers
from tests.support import until as _until
from tests.webhooks.receiver import Receiver, types

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ADMIN = "e2e-admin-token-123456"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with two_fast_providers() as s:
        yield s


def _config(sim: Simulator, db: Path, port: int) -> dict[str, Any]:
    return {
        "server": {"control": {"host": "127.0.0.1", "port": port}},
        "database": {"url": f"sqlite:///{db}"},
        "auth": {"public_read": True, "tokens": [{"token": ADMIN, "scope": "admin", "name": "e2e"}]},
        "webhooks": {
            "allow_private_networks": ["127.0.0.0/8"],
            "timeout": "2s",
            "retry_schedule": ["200ms", "300ms", "400ms"],
        },
        "providers": sim.turnout_providers(),
        "routes": [{"name": "main", "targets": ["sim-openai/gpt-4o", "sim-anthropic/claude-sonnet-4"]}],
        "probes": {
            "interval": "300ms",
            "jitter": 0.1,
            "timeout": "2s",
            "kinds": {
                "catalogue": {"interval": "300ms"},
                "completion": {"interval": "300ms"},
                "status_page": {"enabled": False},
            },
        },
    }


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "controlplane.cli", "serve", "-c", str(config), "--role", "control"],
        cwd=str(config.parent),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _deliveries(db: Path, endpoint: str) -> list[tuple[str, int, str]]:
    with sqlite3.connect(db) as conn:
        return list(
            conn.execute(
                "SELECT id, event_id, status FROM webhook_deliveries WHERE endpoint_id = ? ORDER BY seq", (endpoint,)
            )
        )


async def test_withdrawal_events_arrive_once_each_in_order_across_sigkill(sim: Simulator, tmp_path: Path) -> None:
    port, db = free_port(), tmp_path / "turnout.db"
    config = tmp_path / "turnout.yaml"
    config.write_text(yaml.safe_dump(_config(sim, db, port)))
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    receiver = await Receiver(script=[500, 500]).start()
    proc = _spawn(config, log)
    killed = asyncio.Event()

    def kill_on_third(n: int) -> None:  # Turnout dies while the receiver holds the delivery
        if n == 3 and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed.set()

    receiver.on_receive = kill_on_third
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                try:
                    async with http.get(f"{base}/readyz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await _until(ready)
            async with http.post(
                f"{base}/api/v1/webhooks", json={"url": receiver.url}, headers={"Authorization": f"Bearer {ADMIN}"}
            ) as r:
                assert r.status == 201, await r.text()
                created = await r.json()
            receiver.secret, endpoint = created["secret"], created["id"]
            sim.set_fault("sim-openai", "region_blocked", model="gpt-4o")

            await asyncio.wait_for(killed.wait(), 40)
            proc.wait(timeout=10)
            proc = _spawn(config, log)
            await _until(ready)

            async def settled() -> list[tuple[str, int, str]] | None:
                rows = _deliveries(db, endpoint)
                done = rows and all(status == "delivered" for _, _, status in rows)
                return rows if done and {r.msg_id for r in receiver.unique()} >= {mid for mid, _, _ in rows} else None

            rows = await _until(settled)
            async with http.get(f"{base}/api/v1/events", params={"after": str(rows[0][1] - 1), "limit": "1000"}) as r:
                events = (await r.json())["events"]
    finally:
        stop_process(proc)
        await receiver.stop()
    assert all(r.verified for r in receiver.got), "every request verifies with standardwebhooks"
    unique = receiver.unique()
    delivered_ids = [r.body["id"] for r in unique]
    assert delivered_ids == [event_id for _, event_id, _ in rows], "one message per event, in event order"
    assert len(set(delivered_ids)) == len(delivered_ids), "no event arrives under two webhook-ids"
    stored_ids = [e["id"] for e in events if e["id"] <= delivered_ids[-1]]
    assert delivered_ids == stored_ids, "every stored event since registration was delivered"
    assert [r.body for r in unique] == [e for e in events if e["id"] in set(delivered_ids)], (
        "webhook payload == events API payload"
    )
    assert "target.withdrawn" in types(unique) or any(
        r.body["type"] == "target.state_changed" and r.body["data"].get("new") == "withdrawn" for r in unique
    ), types(unique)
    assert len(receiver.got) > len(unique), "the kill produced at least one duplicate, which de-duplication removed"
