"""Bench: status API throughput (`GET /api/v1/table` with wrk, or an aiohttp client loop without it) and
long-poll wake-up latency (N waiting clients, one publish). Prints numbers; never asserts.
Aims (issue 6): > 5,000 req/s on 2 shared cores; long-poll answered within 50 ms of a new version.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from controlplane.clock import SystemClock
from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.domain import State
from controlplane.events import EventBus
from controlplane.metrics import Metrics
from controlplane.publisher import TablePublisher
from controlplane.store import Store
from controlplane.table import RouteRanking, Table, TableEntry

__all__ = ["main", "BenchRuntime", "bench_table"]


def _config(providers: int = 6, models: int = 4) -> Config:
    provs = "\n".join(
        f"  - {{id: p{i}, adapter: openai, base_url: 'http://p{i}.invalid', models: [{', '.join(f'{{name: m{j}}}' for j in range(models))}]}}"
        for i in range(providers)
    )
    routes = "\n".join(
        f"  - {{name: r{j}, targets: [{', '.join(f'p{i}/m{j}' for i in range(providers))}]}}" for j in range(models)
    )
    return parse_config(f"providers:\n{provs}\nroutes:\n{routes}\n", source="bench")


def bench_table(cfg: Config, version: int) -> Table:
    entries = {
        t.key: TableEntry(
            target=t.key,
            provider=t.provider,
            model=t.model,
            state=State.CLOSED,
            admissible=True,
            rank=1,
            score=0.9,
            reason="closed: 0 failures in 60 s",
            latency_p50_s=0.21,
            latency_p95_s=0.5,
            ttft_p50_s=0.1,
            error_rate=0.0,
            headroom=0.8,
        )
        for t in cfg.targets()
    }
    routes = {r.name: RouteRanking(route=r.name, entries=tuple(entries[t] for t in r.targets)) for r in cfg.routes}
    return Table(version=version, published_at=datetime.now(UTC), routes=routes, targets=entries, config_hash=cfg.hash)


class ReadOnlyOperator:
    """The operator side of the status API's dependencies for benches that only read: every action refuses."""

    async def drain(
        self,
        *,
        target: str | None = None,
        provider: str | None = None,
        reason: str,
        until: datetime | None = None,
        actor: str,
    ) -> object:
        raise NotImplementedError("a bench runtime serves reads only")

    async def undrain(
        self, *, target: str | None = None, provider: str | None = None, actor: str, reason: str = ""
    ) -> object:
        raise NotImplementedError("a bench runtime serves reads only")

    async def reload_config(self, *, actor: str = "system") -> Config:
        raise NotImplementedError("a bench runtime serves reads only")


class BenchRuntime(ReadOnlyOperator):
    """Just enough runtime for the status API."""

    def __init__(self, db: Path) -> None:
        self.config = _config()
        self.clock = SystemClock()
        self.store = Store(f"sqlite:///{db}", self.clock)
        self.bus = EventBus()
        self.metrics = Metrics()
        self.health = None
        self.table_source = TablePublisher(bench_table(self.config, 1))

    def readiness_checks(self) -> dict[str, bool]:
        return {}


def _serve(rt: BenchRuntime, port: int) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    from controlplane.api.routes import install

    async def start() -> None:
        app = web.Application()
        install(app, rt)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    return loop, thread


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wrk(url: str, seconds: int, connections: int) -> str | None:
    if shutil.which("wrk") is None:
        return None
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    return out.stdout


async def _client_loop(url: str, seconds: float, concurrency: int) -> float:
    done = 0
    stop = time.perf_counter() + seconds
    async with aiohttp.ClientSession() as s:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                async with s.get(url) as r:
                    await r.read()
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / seconds


async def _long_poll(
    base: str, rt: BenchRuntime, loop: asyncio.AbstractEventLoop, waiters: int, rounds: int
) -> list[float]:
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        for _ in range(rounds):
            v = rt.table_source.current().version

            async def wait_one(v: int = v) -> float:
                async with s.get(f"{base}/api/v1/table", params={"after": str(v), "wait": "10"}) as r:
                    await r.read()
                    return time.perf_counter()

            tasks = [asyncio.create_task(wait_one()) for _ in range(waiters)]
            await asyncio.sleep(0.3)  # let every poll reach the server
            published = time.perf_counter()
            nxt = replace(rt.table_source.current(), version=v + 1)
            loop.call_soon_threadsafe(rt.table_source.publish, nxt)
            latencies.extend(t - published for t in await asyncio.gather(*tasks))
    return latencies


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench.status_api")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--waiters", type=int, default=200)
    args = ap.parse_args(argv or [])
    with tempfile.TemporaryDirectory() as tmp:
        rt = BenchRuntime(Path(tmp) / "bench.db")
        port = free_port()
        loop, thread = _serve(rt, port)
        base = f"http://127.0.0.1:{port}"
        size = len(rt.table_source.current().to_dict()["targets"])
        print(f"table: {size} targets, {len(rt.config.routes)} routes")
        report = _wrk(f"{base}/api/v1/table", args.seconds, args.connections)
        if report is not None:
            rps = re.search(r"Requests/sec:\s+([\d.]+)", report)
            p99 = re.search(r"99%\s+(\S+)", report)
            print(
                f"GET /api/v1/table (wrk, {args.connections} connections, {args.seconds}s): "
                f"{float(rps.group(1)) if rps else float('nan'):,.0f} req/s, p99 {p99.group(1) if p99 else '?'}  (aim > 5,000 req/s)"
            )
        else:
            rps_f = asyncio.run(_client_loop(f"{base}/api/v1/table", args.seconds, args.connections))
            print(
                f"GET /api/v1/table (aiohttp client, wrk not installed): {rps_f:,.0f} req/s  (aim > 5,000 req/s with wrk)"
            )
        lat = asyncio.run(_long_poll(base, rt, loop, args.waiters, 3))
        lat.sort()
        print(
            f"long-poll: {args.waiters} waiters × 3 publishes: wake-up p50 {statistics.median(lat) * 1000:.1f} ms, "
            f"p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms  (aim: within 50 ms)"
        )
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        rt.store.close()


if __name__ == "__main__":
    main()
