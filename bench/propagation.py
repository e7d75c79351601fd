"""Bench: table propagation from a leader's publish to a data replica, on loopback. Prints p50/p95/p99/max;
never asserts (machines differ). Aim: p99 < 100 ms.

Two paths, both through the real status-API long-poll handler and the real DataReplica follower:
- `direct`: the leader publishes → its long-poll answers → the data replica has the version;
- `via-follower` (PostgreSQL at 127.0.0.1:5432 only): the leader's pipeline stores the table → the NOTIFY
  trigger → a follower control replica reads it → its long-poll answers → the data replica has it.

`python -m bench propagation [--n 200] [--pg postgresql+psycopg://…]`
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from aiohttp import web

from bench.status_api import ReadOnlyOperator
from controlplane.api.status import StatusHandlers
from controlplane.clock import SystemClock
from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.events import EventBus
from controlplane.health import HealthModel
from controlplane.metrics import Metrics
from controlplane.publisher import TablePublisher
from controlplane.seams import HealthDetail, TableSource
from controlplane.store import Store
from controlplane.table import Table
from dataplane.replica import DataReplica

__all__ = ["main", "measure"]

_PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=2"


def _config() -> Config:
    return parse_config(
        """
providers:
  - {id: a, adapter: openai, base_url: "http://127.0.0.1:9", models: [{name: m1}, {name: m2}, {name: m3}]}
  - {id: b, adapter: openai, base_url: "http://127.0.0.1:9", models: [{name: m1}, {name: m2}, {name: m3}]}
routes:
  - {name: main, targets: [a/m1, b/m1, a/m2, b/m2]}
  - {name: cheap, targets: [a/m3, b/m3]}
""",
        source="bench",
    )


@dataclass
class _Rt(ReadOnlyOperator):
    """The status API's dependencies around one table source; only GET /api/v1/table is served."""

    config: Config
    table_source: TableSource
    clock: SystemClock = field(default_factory=SystemClock)
    metrics: Metrics = field(default_factory=Metrics)
    bus: EventBus = field(default_factory=EventBus)
    store: Store = field(default_factory=lambda: Store("sqlite://", SystemClock()))  # never read by the table route
    health: HealthDetail | None = None

    def readiness_checks(self) -> dict[str, bool]:
        return {}


async def _serve_table(source: TableSource, config: Config) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/api/v1/table", StatusHandlers(_Rt(config, source)).table)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def _percentiles(samples: list[float]) -> str:
    s = sorted(samples)
    q = statistics.quantiles(s, n=100, method="inclusive")
    return (
        f"n={len(s)} p50={q[49] * 1000:.2f} ms p95={q[94] * 1000:.2f} ms p99={q[98] * 1000:.2f} ms "
        f"max={s[-1] * 1000:.2f} ms"
    )


async def measure(
    n: int, publish: Callable[[Table], Awaitable[object]], replica: DataReplica, base: Table, start_version: int
) -> list[float]:
    """Publish `n` versions one after another; time each until the replica holds it."""
    out: list[float] = []
    for i in range(n):
        v = start_version + i + 1
        t0 = time.perf_counter()
        await publish(replace(base, version=v, published_at=datetime.now(UTC)))
        got = await replica.table_source.base.wait_newer(v - 1, 5.0)
        if got is None:
            raise RuntimeError(f"version {v} did not reach the data replica within 5 s")
        out.append(time.perf_counter() - t0)
    return out


async def _direct(n: int) -> None:
    cfg = _config()
    base = HealthModel(cfg, SystemClock()).table
    pub = TablePublisher(base)
    runner, url = await _serve_table(pub, cfg)
    replica = DataReplica(cfg, [url], token="x")
    await replica.start()
    try:
        await replica.table_source.base.wait_newer(0, 5.0)

        async def publish(t: Table) -> None:
            pub.publish(t)

        print(
            "direct        (leader publish → long-poll → data replica): "
            + _percentiles(await measure(n, publish, replica, base, base.version))
        )
    finally:
        await replica.stop()
        await runner.cleanup()


async def _via_follower(n: int, admin: str) -> None:
    import psycopg

    from controlplane.scaleout.control_replica import StoreFollower, install_notify
    from controlplane.scaleout.leader import pg_conninfo
    from controlplane.store import Store

    name = f"turnout_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    cfg = _config()
    store = Store(url, SystemClock())
    try:
        install_notify(store.engine)
        base = HealthModel(cfg, SystemClock()).table
        follower = StoreFollower(store.engine, TablePublisher(base), conninfo=pg_conninfo(url), poll_interval=30.0)
        task = asyncio.create_task(follower.run())
        runner, api = await _serve_table(follower.publisher, cfg)
        replica = DataReplica(cfg, [api], token="x")
        await replica.start()
        try:
            while not follower.listening:
                await asyncio.sleep(0.01)
            await replica.table_source.base.wait_newer(0, 5.0)

            async def publish(t: Table) -> None:
                await asyncio.to_thread(store.save_health, {}, t)  # what the leader's pipeline does before publishing

            print(
                "via-follower  (store + NOTIFY → follower → long-poll → data replica): "
                + _percentiles(await measure(n, publish, replica, base, base.version))
            )
        finally:
            await replica.stop()
            await runner.cleanup()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        store.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_reachable(admin: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(admin):
            return True
    except Exception:  # not reachable here: that path is skipped with a note
        return False


async def _main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench propagation")
    ap.add_argument("--n", type=int, default=200, help="versions to publish per path")
    ap.add_argument(
        "--pg-admin", default=_PG_ADMIN, help="libpq conninfo of a database to create the bench database from"
    )
    args = ap.parse_args(argv)
    await _direct(args.n)
    if _pg_reachable(args.pg_admin):
        await _via_follower(args.n, args.pg_admin)
    else:
        print("via-follower: skipped (PostgreSQL not reachable)")


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_main(list(argv or [])))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
