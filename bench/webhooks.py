"""Bench: webhook fan-out. N endpoints on a local receiver (its own process) × M events appended at a steady
rate through the real store + outbox + dispatcher; prints deliveries/s and event → delivery latency
percentiles (receiver arrival minus the event's `at`). Never asserts.
Aim (issue 6): 100 endpoints × 1,000 events with p99 event → delivery < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import socket
import statistics
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlmodel import Session

from bench.status_api import free_port
from controlplane.clock import SystemClock
from controlplane.config import WebhookConfig
from controlplane.events import Event
from controlplane.metrics import Metrics
from controlplane.store import Store
from controlplane.webhooks.dispatcher import Dispatcher
from controlplane.webhooks.outbox import install_outbox
from controlplane.webhooks.rows import WebhookEndpoint
from controlplane.webhooks.signing import generate_secret

__all__ = ["main"]


def _receiver(port: int, ready: EventType) -> None:
    """Receiver process: records arrival latency per delivery; GET /stats returns them."""
    latencies: list[float] = []
    seen: set[str] = set()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        msg = request.headers.get("webhook-id", "")
        if msg not in seen:
            seen.add(msg)
            at = datetime.fromisoformat(json.loads(body)["at"].replace("Z", "+00:00")).timestamp()
            latencies.append(time.time() - at)
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"latencies": latencies})

    app = web.Application()
    app.router.add_post("/hook/{i}", hook)
    app.router.add_get("/stats", stats)
    ready.set()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=True)


async def _run(endpoints: int, events: int, rate: float, db: Path, port: int) -> None:
    clock = SystemClock()
    store = Store(f"sqlite:///{db}", clock)
    outbox = install_outbox(store, clock)
    with Session(store.engine) as s:
        for i in range(endpoints):
            s.add(
                WebhookEndpoint(
                    id=f"ep_{i:04d}",
                    url=f"http://127.0.0.1:{port}/hook/{i}",
                    secret=generate_secret(),
                    created_at=time.time(),
                )
            )
        s.commit()
    cfg = WebhookConfig(allow_private_networks=["127.0.0.0/8"], timeout=5.0)
    dispatcher = Dispatcher(
        engine=store.engine, clock=clock, config=cfg, metrics=Metrics(), poll_interval=0.5, concurrency=128
    )
    outbox.add_waker(dispatcher.wake)
    task = asyncio.create_task(dispatcher.run())
    started = time.perf_counter()
    append_times: list[float] = []
    for n in range(events):
        ev = Event(type="target.state_changed", at=datetime.now(UTC), subject=f"p/m{n % 10}", data={"n": n})
        t0 = time.perf_counter()
        await asyncio.to_thread(store.append_events, [ev])
        append_times.append(time.perf_counter() - t0)
        delay = started + (n + 1) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    appended = time.perf_counter() - started
    total = endpoints * events
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"http://127.0.0.1:{port}/stats") as r:
                lat = (await r.json())["latencies"]
            if len(lat) >= total or time.perf_counter() - started > 300:
                break
            await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    store.close()
    lat.sort()

    def pct(q: float) -> float:
        return float(lat[min(len(lat) - 1, int(len(lat) * q))]) * 1000

    print(f"fan-out: {endpoints} endpoints × {events} events at {rate:g} events/s (appended in {appended:.1f} s)")
    append_times.sort()
    print(
        f"  append_events (with outbox fan-out): p50 {append_times[len(append_times) // 2] * 1000:.1f} ms, "
        f"max {append_times[-1] * 1000:.1f} ms"
    )
    print(f"  delivered {len(lat):,}/{total:,} in {elapsed:.1f} s = {len(lat) / elapsed:,.0f} deliveries/s")
    if lat:
        print(
            f"  event → delivery: p50 {pct(0.5):.0f} ms, p99 {pct(0.99):.0f} ms, max {lat[-1] * 1000:.0f} ms, "
            f"mean {statistics.fmean(lat) * 1000:.0f} ms  (aim p99 < 1,000 ms)"
        )


def _wait_listening(port: int, timeout: float = 20.0) -> None:
    """The receiver binds just after signalling `ready`: poll until its port accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"receiver did not start on port {port}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench.webhooks")
    ap.add_argument("--endpoints", type=int, default=100)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument(
        "--rate", type=float, default=10.0, help="events appended per second (10 × 100 endpoints = 1,000 deliveries/s)"
    )
    args = ap.parse_args(argv or [])
    port = free_port()
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_receiver, args=(port, ready), daemon=True)
    proc.start()
    try:
        ready.wait(20)
        _wait_listening(port)
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(_run(args.endpoints, args.events, args.rate, Path(tmp) / "bench.db", port))
    finally:
        proc.terminate()
        proc.join(10)


if __name__ == "__main__":
    main()
