"""Three control replicas and two data replicas (`turnout serve` subprocesses) on one real PostgreSQL database,
with the provider simulator behind them and a Standard Webhooks receiver in front.

One scenario, in order: a fault withdraws a target (events, webhooks); the leader is SIGKILLed and a follower
leads within the bound; the fault clears under the new leader (more events); every control replica is then
stopped for a while and the data replicas keep answering; the control replicas return and the data replicas'
buffered outcomes reach the store. Throughout: a long-polling client sees strictly increasing versions, and
the receiver (after de-duplication by webhook-id) gets every stored event.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
import yaml

from adapters.sim.simulator import Simulator
from controlplane.scaleout.leader import pg_conninfo
from tests.support import free_port, two_fast_providers
from tests.support import until as _until
from tests.webhooks.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.slow]

ADMIN = "cluster-admin-token-123456"
LEASE = 2.0
OUTAGE_S = 10.0  # every control replica down this long; the data replicas must not notice
ROUTE = "main"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with two_fast_providers() as s:
        yield s


class Cluster:
    """Writes one config file per replica (ports differ) and runs each as `turnout serve`."""

    def __init__(self, sim: Simulator, pg_url: str, tmp: Path) -> None:
        self.sim, self.pg_url, self.tmp = sim, pg_url, tmp
        self.control_ports = [free_port() for _ in range(3)]
        self.data_ports = [free_port() for _ in range(2)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def config(self, control_port: int, data_port: int) -> dict[str, Any]:
        return {
            "server": {
                "control": {"host": "127.0.0.1", "port": control_port},
                "data": {"host": "127.0.0.1", "port": data_port},
            },
            "database": {"url": self.pg_url},
            "auth": {"public_read": True, "tokens": [{"token": ADMIN, "scope": "admin", "name": "cluster"}]},
            "scale_out": {"leader_lease": f"{LEASE}s", "poll_interval": "500ms"},
            "webhooks": {
                "allow_private_networks": ["127.0.0.0/8"],
                "timeout": "2s",
                "retry_schedule": ["200ms", "300ms", "400ms"],
            },
            "breaker": {"withdrawn_recheck": "1s", "open_duration": "1s"},
            "providers": self.sim.turnout_providers(),
            "routes": [{"name": ROUTE, "targets": ["sim-openai/gpt-4o", "sim-anthropic/claude-sonnet-4"]}],
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

    @property
    def control_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.control_ports]

    @property
    def data_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.data_ports]

    def spawn(self, name: str, role: str, control_port: int, data_port: int, extra: list[str] | None = None) -> None:
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(self.config(control_port, data_port)))
        log = (self.tmp / f"{name}.log").open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TURNOUT_ADVERTISE_URL": f"http://127.0.0.1:{control_port}"}
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "controlplane.cli", "serve", "-c", str(path), "--role", role, *(extra or [])],
            cwd=str(self.tmp),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def spawn_control(self, i: int) -> None:
        self.spawn(f"control{i}", "control", self.control_ports[i], free_port())

    def spawn_data(self, i: int) -> None:
        extra = [a for url in self.control_urls for a in ("--control-url", url)]
        self.spawn(f"data{i}", "data", free_port(), self.data_ports[i], extra)

    async def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(sig)
        # Waited for off the event loop: the simulator answers the data replicas from this loop, and a graceful
        # stop can take seconds under load (a blocked loop would stall every upstream call meanwhile).
        await asyncio.to_thread(proc.wait, 20)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.tmp.glob("*.log")))


async def _get_json(http: aiohttp.ClientSession, url: str) -> Any:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as r:
            return await r.json() if r.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None


async def _leader(http: aiohttp.ClientSession, urls: list[str]) -> str | None:
    """The control URL that says it leads (and whose lease the database confirms)."""
    for url in urls:
        body = await _get_json(http, f"{url}/api/v1/leader")
        if body and body["this_replica_leads"] and body["leader_url"] == url:
            return url
    return None


async def _long_poll(http: aiohttp.ClientSession, urls: list[str], seen: list[int], stop: asyncio.Event) -> None:
    """A client following the table by long-poll over every control URL."""
    i, after = 0, 0
    while not stop.is_set():
        url = urls[i % len(urls)]
        try:
            async with http.get(
                f"{url}/api/v1/table", params={"after": str(after), "wait": "2"}, timeout=aiohttp.ClientTimeout(total=5)
            ) as r:
                if r.status == 200:
                    after = (await r.json())["version"]
                    seen.append(after)
                elif r.status != 304:
                    i += 1
        except (aiohttp.ClientError, TimeoutError, OSError):
            i += 1
            await asyncio.sleep(0.1)


async def _traffic(
    http: aiohttp.ClientSession,
    urls: list[str],
    results: list[tuple[float, int]],
    stop: asyncio.Event,
    failures: list[str],
) -> None:
    """Chat completions against the data replicas, alternating; records (time, HTTP status or -1) and, for each
    failure, what the client got (so a red run says which replica answered what, and when)."""
    n = 0
    body = {"model": ROUTE, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    while not stop.is_set():
        url = urls[n % len(urls)]
        n += 1
        try:
            async with http.post(f"{url}/v1/chat/completions", json=body, timeout=aiohttp.ClientTimeout(total=10)) as r:
                answer = await r.read()
                results.append((time.monotonic(), r.status))
                if r.status != 200:
                    failures.append(f"t={time.monotonic():.2f} {url} {r.status} {answer[:300]!r}")
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            results.append((time.monotonic(), -1))
            failures.append(f"t={time.monotonic():.2f} {url} {e!r}")
        await asyncio.sleep(0.05)


def _sql(pg_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_conninfo(pg_url), autocommit=True) as conn:
        return list(conn.execute(query).fetchall())


async def test_cluster_survives_leader_kill_and_control_plane_outage(
    sim: Simulator, pg_url: str, tmp_path: Path
) -> None:
    cluster = Cluster(sim, pg_url, tmp_path)
    receiver = await Receiver().start()
    stop = asyncio.Event()
    seen: list[int] = []
    traffic: list[tuple[float, int]] = []
    failures: list[str] = []
    marks: dict[str, float] = {}  # when each step began, to place a failure in the scenario
    tasks: list[asyncio.Task[None]] = []
    try:
        async with aiohttp.ClientSession() as http:
            for i in range(3):
                cluster.spawn_control(i)

            async def all_ready() -> bool:
                for url in cluster.control_urls:
                    try:
                        async with http.get(f"{url}/readyz") as r:
                            if r.status != 200:
                                return False
                    except aiohttp.ClientError:
                        return False
                return True

            await _until(all_ready, what="three control replicas ready")
            leader = await _until(lambda: _leader(http, cluster.control_urls), what="a leader")
            follower = next(u for u in cluster.control_urls if u != leader)
            # Registered through a follower: the endpoint lives in the shared database.
            async with http.post(
                f"{follower}/api/v1/webhooks", json={"url": receiver.url}, headers={"Authorization": f"Bearer {ADMIN}"}
            ) as r:
                assert r.status == 201, await r.text()
                created = await r.json()
            receiver.secret = created["secret"]
            first_event = max([e for (e,) in _sql(pg_url, "SELECT max(id) FROM events") if e is not None] or [0])

            for i in range(2):
                cluster.spawn_data(i)

            async def data_ready() -> bool:
                for url in cluster.data_urls:
                    if await _get_json(http, f"{url}/v1/models") is None:
                        return False
                return True

            await _until(data_ready, what="two data replicas serving")
            tasks = [
                asyncio.create_task(_long_poll(http, cluster.control_urls, seen, stop)),
                asyncio.create_task(_traffic(http, cluster.data_urls, traffic, stop, failures)),
            ]

            # 1. A withdrawal under the first leader: events and webhooks.
            marks["fault"] = time.monotonic()
            sim.set_fault("sim-openai", "region_blocked", model="gpt-4o")
            await _until(lambda: _delivered_any(receiver), what="a first webhook")

            # 2. SIGKILL the leader mid-scenario: a follower must lead within the bound.
            leader_name = f"control{cluster.control_urls.index(leader)}"
            marks["kill"] = time.monotonic()
            killed_at = time.monotonic()
            await cluster.kill(leader_name)
            survivors = [u for u in cluster.control_urls if u != leader]
            new_leader = await _until(lambda: _leader(http, survivors), timeout=15, what="a new leader")
            takeover = time.monotonic() - killed_at
            assert takeover < 10.0, f"takeover took {takeover:.1f} s"

            # 3. The fault clears under the new leader: more events, more webhooks.
            marks["clear"] = time.monotonic()
            sim.clear_faults()
            before = len(receiver.unique())
            await _until(lambda: _more_than(receiver, before), what="webhooks from the new leader")

            # 4. Every control replica stops; the data replicas keep answering on their last table.
            await asyncio.sleep(0.5)  # some traffic before the outage
            for name in [n for n in cluster.procs if n.startswith("control")]:
                await cluster.kill(name, signal.SIGTERM)
            outage_start = marks["outage"] = time.monotonic()
            live_before = _sql(pg_url, "SELECT count(*) FROM observations WHERE source = 'live'")[0][0]
            await asyncio.sleep(OUTAGE_S)
            outage_end = time.monotonic()
            async with http.get(f"{cluster.data_urls[0]}/metrics") as r:
                exposition = await r.text()
            assert "turnout_dataplane_reports_dropped_total" in exposition, "a data replica serves its own metrics"

            # 5. The control plane returns; buffered live outcomes arrive.
            marks["return"] = time.monotonic()
            cluster.spawn_control(0)
            cluster.spawn_control(1)
            await _until(lambda: _leader(http, cluster.control_urls[:2]), timeout=20, what="a leader after the outage")

            async def reported() -> bool:
                return bool(_sql(pg_url, "SELECT count(*) FROM observations WHERE source = 'live'")[0][0] > live_before)

            await _until(reported, what="replica reports after the outage")

            async def recorded() -> bool:  # the data replicas' decision-log records reach the store too
                rows = _sql(
                    pg_url, "SELECT count(*), count(DISTINCT route) FROM dataplane_decisions WHERE outcome = 'ok'"
                )
                return bool(rows[0][0] >= len(traffic) // 2 and rows[0][1] >= 1)

            await _until(recorded, what="the data replicas' decision records in the store")

            # The events stored so far, then their deliveries: probes go on and may store more meanwhile (those
            # are not waited for: the leader can be stopped between its claim of one and the POST).
            events = [e for (e,) in _sql(pg_url, f"SELECT id FROM events WHERE id > {first_event} ORDER BY id")]

            async def settled() -> bool:
                rows = _sql(
                    pg_url,
                    f"SELECT count(DISTINCT event_id) FROM webhook_deliveries WHERE endpoint_id = '{created['id']}' "
                    f"AND status = 'delivered' AND event_id > {first_event} AND event_id <= {max(events, default=0)}",
                )
                return bool(rows[0][0] == len(events))

            await _until(settled, what="every stored event's webhook delivered")
            stop.set()
            await asyncio.gather(*tasks)
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        cluster.stop_all()
        await receiver.stop()

    assert len(seen) >= 3 and all(a < b for a, b in zip(seen, seen[1:], strict=False)), f"versions seen: {seen}"
    assert all(r.verified for r in receiver.got)
    got_ids = {r.body["id"] for r in receiver.unique()}
    missing = [e for e in events if e not in got_ids]
    assert len(events) >= 2, "the scenario produced events under both leaders"
    assert not missing, f"stored events never delivered: {missing}"
    during = [s for t, s in traffic if outage_start <= t <= outage_end]
    assert len(during) >= OUTAGE_S * 5, "the client kept sending during the outage"
    errors = [s for _, s in traffic if s != 200]
    assert not errors, f"client errors: {errors[:10]} of {len(traffic)}; {failures[:5]}; phases {marks}"
    print(
        f"takeover after SIGKILL: {takeover:.2f} s; {new_leader} leads; versions {seen[0]}..{seen[-1]} ({len(seen)} seen); "
        f"{len(traffic)} requests, {len(during)} during the outage; {len(events)} events delivered"
    )


async def _delivered_any(receiver: Receiver) -> bool:
    return bool(receiver.unique())


async def _more_than(receiver: Receiver, n: int) -> bool:
    return len(receiver.unique()) > n
