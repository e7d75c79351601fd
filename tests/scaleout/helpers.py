"""Shared test material for scale-out: a small config and a stand-in control replica on loopback."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from aiohttp import web

from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.domain import Observation
from controlplane.health import HealthModel
from controlplane.publisher import TablePublisher
from controlplane.scaleout.leader import pg_conninfo
from controlplane.table import Table
from tests.fakes import FakeClock
from tests.support import free_port

ADMIN = "admintoken-123456"
READ = "readtoken-123456"


def small_config(extra: str = "") -> Config:
    return parse_config(f"""
providers:
  - {{id: p1, adapter: openai, base_url: "http://127.0.0.1:9", models: [{{name: m1}}, {{name: m2}}, {{name: m3}}]}}
routes:
  - {{name: main, targets: [p1/m1, p1/m2, p1/m3]}}
auth: {{tokens: [{{token: {ADMIN}, scope: admin, name: ops}}, {{token: {READ}, scope: read, name: reader}}]}}
{extra}
""")


def expire_lease(pg_url: str) -> None:
    """What a whole lease without renewal does in the database: the old leader is partitioned or paused."""
    with psycopg.connect(pg_conninfo(pg_url), autocommit=True) as conn:
        conn.execute("UPDATE turnout_leader SET expires_at = now() - interval '1 second'")


def table_v(config: Config, version: int) -> Table:
    from dataclasses import replace

    return replace(
        HealthModel(config, FakeClock()).table, version=version, published_at=datetime(2026, 1, 1, tzinfo=UTC)
    )


class ListSink:
    def __init__(self) -> None:
        self.got: list[Observation] = []

    def submit(self, obs: Observation) -> None:
        self.got.append(obs)


class ListStore:
    def __init__(self, engine: Any = None) -> None:
        self.stored: list[Observation] = []
        self.engine = engine  # a real engine when a test wants reported decisions written

    def add_observations(self, obs: list[Observation]) -> int:
        self.stored.extend(obs)
        return len(obs)


@dataclass
class StubLeadership:
    is_leader: bool = True
    url: str = "http://leader.example"

    async def current(self) -> Any:
        from controlplane.scaleout.leader import LeaderInfo

        return LeaderInfo("x", 3, self.url, True, 1.0)


@dataclass
class StubControlRuntime:
    """Just what the table long-poll and the ingest handler read."""

    config: Config
    table_source: TablePublisher
    clock: FakeClock = field(default_factory=FakeClock)
    sink: ListSink = field(default_factory=ListSink)
    store: ListStore = field(default_factory=ListStore)
    leadership: StubLeadership | None = None


class StubControl:
    """A control replica on a free loopback port: long-poll table endpoint plus the real ingest handler."""

    def __init__(self, rt: StubControlRuntime) -> None:
        self.rt = rt
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _table(self, request: web.Request) -> web.Response:
        after = int(request.query.get("after", "-1"))
        wait = float(request.query.get("wait", "0"))
        t = self.rt.table_source.current()
        if t.version <= after:
            got = await self.rt.table_source.wait_newer(after, wait)
            if got is None:
                return web.Response(status=304)
            t = got
        return web.json_response(t.to_dict())

    async def start(self) -> StubControl:
        from controlplane.scaleout import replication_api

        app = web.Application()
        app.router.add_get("/api/v1/table", self._table)
        replication_api.install(app, self.rt)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
