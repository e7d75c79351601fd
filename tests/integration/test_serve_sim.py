"""Turnout against the provider simulator on loopback.

In process: a ControlPlane with a FakeClock drives probe jobs by hand (`scheduler.run_due`) against the real
adapters and simulated providers; every target gets observations, and a fault switched on in the simulator
changes the recorded error class within one probe interval.
Out of process: `turnout serve` as a subprocess is killed with SIGKILL and restarted; breaker states and the
table version sequence resume (no version lower than one already published).
"""

from __future__ import annotations

import json
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
from controlplane.config_loader import parse_config
from controlplane.control_plane import ControlPlane
from controlplane.domain import ErrorClass, State
from tests.fakes import FakeClock
from tests.support import free_port, stop_process
from tests.support import until as _until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _sim_config() -> dict[str, Any]:
    fast = {"port": 0, "latency": "5ms", "ttft": "10ms", "token_rate": 500}
    return {
        "host": "127.0.0.1",
        "admin_port": 0,
        "seed": 1,
        "providers": [
            {
                "id": "sim-openai",
                "family": "openai",
                "api_key": "k1",
                **fast,
                "models": [{"name": "gpt-4o"}, {"name": "gpt-4o-mini"}],
            },
            {
                "id": "sim-anthropic",
                "family": "anthropic",
                "api_key": "k2",
                **fast,
                "models": [{"name": "claude-sonnet-4"}],
            },
            {"id": "sim-gemini", "family": "gemini", "api_key": "k3", **fast, "models": [{"name": "gemini-2.5-flash"}]},
        ],
    }


def _turnout_config(sim: Simulator, db: Path, probes: dict[str, Any], **server: Any) -> dict[str, Any]:
    return {
        "server": server or {},
        "database": {"url": f"sqlite:///{db}"},
        "providers": sim.turnout_providers(),
        "routes": [
            {
                "name": "main",
                "targets": ["sim-openai/gpt-4o", "sim-anthropic/claude-sonnet-4", "sim-gemini/gemini-2.5-flash"],
            }
        ],
        "probes": probes,
    }


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator.from_yaml(_sim_config())
    await s.start()
    yield s
    await s.stop()


async def test_every_target_is_observed_and_a_fault_changes_the_class_within_one_interval(
    sim: Simulator, tmp_path: Path
) -> None:
    probes = {
        "interval": "10s",
        "jitter": 0.2,
        "timeout": "5s",
        "kinds": {
            "catalogue": {"interval": "60s"},
            "completion": {"interval": "20s"},
            "status_page": {"interval": "60s"},
            "count_tokens": {"interval": "30s"},
        },
    }
    cfg = parse_config(json.dumps(_turnout_config(sim, tmp_path / "t.db", probes)), env={})
    clock = FakeClock()
    rt = ControlPlane(cfg, clock=clock, fire=False, webhooks=False)
    await rt.start()
    try:
        targets = [t.key for t in cfg.targets()]
        for _ in range(31):  # the first 30 s: every job has run at least once
            await rt.scheduler.run_due()
            clock.advance(1)
        await rt.sink.flush()
        for t in targets:
            latest = rt.store.latest_observations(t)
            assert {"catalogue", "completion", "status_page"} <= set(latest), (t, latest)
            assert latest["completion"].ok and latest["catalogue"].ok, (t, latest["completion"])
            assert latest["completion"].ttft_s is not None
        for t in ("sim-anthropic/claude-sonnet-4", "sim-gemini/gemini-2.5-flash"):
            assert rt.store.latest_observations(t)["count_tokens"].ok

        sim.set_fault("sim-anthropic", "overloaded")
        switched = clock.monotonic()
        while clock.monotonic() - switched <= 20 * 1.2 + 1:  # one completion interval, jitter included
            await rt.scheduler.run_due()
            clock.advance(1)
        await rt.sink.flush()
        after = rt.store.latest_observations("sim-anthropic/claude-sonnet-4")["completion"]
        assert after.error_class is ErrorClass.OVERLOADED and after.at.timestamp() > switched
        assert rt.store.latest_observations("sim-openai/gpt-4o")["completion"].ok  # the others unaffected

        sim.clear_faults()
        sim.set_fault("sim-openai", "region_blocked", model="gpt-4o")
        for _ in range(26):
            await rt.scheduler.run_due()
            clock.advance(1)
        await rt.sink.flush()
        table = rt.table_source.current()
        assert table.targets["sim-openai/gpt-4o"].state is State.WITHDRAWN
        assert table.routes["main"].primary is not None and table.routes["main"].primary.target != "sim-openai/gpt-4o"
    finally:
        await rt.stop()


# -- subprocess: kill -9 and restart ----------------------------------------------------------------
async def _get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as resp:
        return resp.status, (await resp.json() if resp.content_type == "application/json" else await resp.text())


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "controlplane.cli", "serve", "-c", str(config), "--role", "control"],
        cwd=str(config.parent),
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def _logged(log: Path, text: str) -> bool:
    return text in log.read_text(errors="replace")


async def _reloaded_events(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events WHERE type = 'config.reloaded'").fetchone()[0])


def _published_versions(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM published_tables ORDER BY version")]


async def test_kill_9_and_restart_resumes_states_and_table_versions(sim: Simulator, tmp_path: Path) -> None:
    port, db = free_port(), tmp_path / "turnout.db"
    probes = {
        "interval": "300ms",
        "jitter": 0.1,
        "timeout": "2s",
        "kinds": {
            "catalogue": {"interval": "300ms"},
            "completion": {"interval": "300ms"},
            "status_page": {"enabled": False},
        },
    }
    config = tmp_path / "turnout.yaml"
    config.write_text(yaml.safe_dump(_turnout_config(sim, db, probes, control={"host": "127.0.0.1", "port": port})))
    base = f"http://127.0.0.1:{port}"
    sim.set_fault("sim-openai", "region_blocked", model="gpt-4o")
    proc = _spawn(config, tmp_path / "serve.log")
    try:
        async with aiohttp.ClientSession() as session:

            async def withdrawn() -> Any:
                try:
                    status, body = await _get(session, f"{base}/api/v1/table")
                except aiohttp.ClientError:
                    return None
                if status != 200:
                    return None
                state = body["targets"]["sim-openai/gpt-4o"]["state"]
                return body if state == "withdrawn" else None

            before = await _until(withdrawn)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            published = _published_versions(db)
            assert published and published[-1] >= before["version"]

            proc = _spawn(config, tmp_path / "serve.log")
            after = await _until(withdrawn)  # still withdrawn: the state came back from the store
            assert after["version"] >= published[-1]
            versions = _published_versions(db)
            assert versions == sorted(set(versions))  # strictly increasing, nothing republished
            assert (await _get(session, f"{base}/readyz"))[0] == 200

            good = config.read_text()
            config.write_text(good.replace("adapter: openai", "adapter: nope"))
            proc.send_signal(signal.SIGHUP)  # an invalid file is refused: the server keeps running on the old one
            await _until(lambda: _logged(tmp_path / "serve.log", "config refused"))
            assert proc.poll() is None and (await _get(session, f"{base}/readyz"))[0] == 200
            config.write_text(good.replace("jitter: 0.1", "jitter: 0.2"))
            proc.send_signal(signal.SIGHUP)
            await _until(lambda: _reloaded_events(db))
    finally:
        stop_process(proc)
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()[-3000:]
