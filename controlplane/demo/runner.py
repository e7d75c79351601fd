"""Runs the demo in one process: simulator, control plane (ControlPlane on SQLite in a temp dir, control app) and
data plane on free loopback ports, a webhook receiver, client traffic, the story, and the verdict.

Exit code 0 only when no client request failed and the story produced at least one `route.primary_changed`
and one `target.withdrawn`.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from rich.console import Console

from controlplane.api.runner import GuardedAppRunner
from controlplane.demo.receiver import WebhookReceiver
from controlplane.demo.story import (
    SIDE_ROUTE,
    STORY_SECONDS,
    TOP_ROUTE,
    Chapter,
    Fault,
    chapters,
    scaled,
    sim_config,
    turnout_config,
)
from controlplane.demo.traffic import Traffic
from controlplane.demo.view import FaultResult, LiveView, PlainView, Snapshot, Summary, View, summary_renderable
from controlplane.events import Event

__all__ = ["DemoOptions", "run_demo", "REQUIRED_EVENTS"]

REQUIRED_EVENTS = ("route.primary_changed", "target.withdrawn")
_REFRESH_S = 0.25


@dataclass(frozen=True)
class DemoOptions:
    speed: float = 1.0  # story compression: 2 = twice as fast
    forever: bool = False  # keep everything running after the story (Ctrl-C stops)
    plain: bool | None = None  # None: plain lines when stdout is not a terminal
    workers: int = 2  # concurrent clients per route
    # (story second, name): at each, `on_moment(name, control_url)` runs as a task beside the story (make
    # screenshots photographs the status page before, during and after the faults); awaited before the summary.
    moments: tuple[tuple[float, str], ...] = ()
    on_moment: Callable[[str, str], Coroutine[Any, Any, None]] | None = None


@dataclass
class _Applied:
    chapter: Chapter
    headline: str
    faults: list[Fault]
    ids: list[str]
    at: float  # monotonic


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = GuardedAppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


def _matches(subject: str, fault: Fault) -> bool:
    return subject == f"{fault.provider}/{fault.model}" if fault.model else subject.startswith(f"{fault.provider}/")


def _reaction(applied: _Applied, events: list[tuple[float, Event]]) -> tuple[str, float | None]:
    """What Turnout did about a chapter's faults: the route moving away from a faulted target (the failover
    clients feel), else the first state change of a faulted target."""
    later = [(t, ev) for t, ev in events if t >= applied.at]
    for t, ev in later:
        if ev.type == "route.primary_changed" and any(
            _matches(str(ev.data.get("from") or ""), f) for f in applied.faults
        ):
            return (
                f"{ev.subject}: primary {ev.data.get('from')} → {ev.data.get('to')} ({ev.data.get('reason', '')})",
                t - applied.at,
            )
    for t, ev in later:
        if ev.type == "target.state_changed" and any(_matches(ev.subject, f) for f in applied.faults):
            return (
                f"{ev.subject}: {ev.data.get('from')} → {ev.data.get('to')} ({ev.data.get('reason', '')})",
                t - applied.at,
            )
    return "absorbed: failed over inside requests, the ranking did not need to move", None


async def run_demo(opts: DemoOptions, console: Console | None = None) -> int:
    """Play the story; return the process exit code."""
    from adapters.sim import Simulator
    from controlplane.api.app import build_control_app
    from controlplane.control_plane import ControlPlane
    from dataplane.http.listener import start_listener
    from dataplane.proxy import build_data_app

    console = console or Console()
    plain = (not console.is_terminal) if opts.plain is None else opts.plain
    speed = max(0.1, opts.speed)
    events: list[tuple[float, Event]] = []
    applied: list[_Applied] = []

    def step(text: str) -> None:
        if plain:
            console.print(f"[setup] {text}", markup=False, highlight=False, soft_wrap=True)

    async with AsyncExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="turnout-demo-")))
        status = stack.enter_context(console.status("starting…")) if not plain else None

        def progress(text: str) -> None:
            step(text)
            if status is not None:
                status.update(text)

        progress("starting the provider simulator (openai, anthropic, gemini, deepseek, vllm)…")
        sim = Simulator.from_yaml(sim_config())
        await sim.start()
        stack.push_async_callback(sim.stop)

        progress("starting the control plane (SQLite in a temp dir) and the data plane…")
        token = secrets.token_urlsafe(16)
        cfg = turnout_config(
            sim.turnout_providers(),
            db_url=f"sqlite:///{tmp / 'turnout.db'}",
            data_port=0,
            control_port=0,
            speed=speed,
            admin_token=token,
        )
        rt = ControlPlane(cfg)
        await rt.start()
        stack.push_async_callback(rt.stop)
        unsubscribe = rt.bus.subscribe(lambda ev: events.append((time.monotonic(), ev)))
        stack.callback(unsubscribe)
        control, control_port = await _serve(build_control_app(rt))
        stack.push_async_callback(control.cleanup)
        data = await start_listener(build_data_app(rt), "127.0.0.1", 0)
        stack.push_async_callback(data.cleanup, 1.0)
        data_port = data.port
        control_url, data_url = f"http://127.0.0.1:{control_port}", f"http://127.0.0.1:{data_port}/v1"

        progress("registering a local webhook receiver…")
        receiver = WebhookReceiver()
        await receiver.start(0)
        stack.push_async_callback(receiver.stop)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{control_url}/api/v1/webhooks",
                json={"url": receiver.url, "description": "turnout demo receiver"},
                headers={"authorization": f"Bearer {token}"},
            ) as resp,
        ):
            created: dict[str, Any] = await resp.json()
            if resp.status != 201:
                raise RuntimeError(f"webhook registration failed: HTTP {resp.status}: {created}")
        receiver.secret = str(created["secret"])

        progress("starting client traffic (openai SDK, base_url → Turnout)…")
        traffic = Traffic(data_url, [TOP_ROUTE, SIDE_ROUTE], workers=opts.workers)
        traffic.start()
        stack.push_async_callback(traffic.stop)
        if status is not None:
            status.stop()

        view: View = PlainView(console, every=scaled(10, speed, 1.0)) if plain else LiveView(console)
        total = scaled(STORY_SECONDS, speed)
        story = chapters()
        story_start = time.monotonic()
        shown = 0
        moments = sorted(opts.moments) if opts.on_moment is not None else []
        moment_tasks: list[asyncio.Task[None]] = []
        with view:
            while True:
                now = time.monotonic()
                elapsed = now - story_start
                while moments and opts.on_moment is not None and elapsed >= scaled(moments[0][0], speed, 0.0):
                    moment_tasks.append(asyncio.create_task(opts.on_moment(moments.pop(0)[1], control_url)))
                while story and elapsed >= scaled(story[0].at, speed, 0.0):
                    ch = story.pop(0)
                    applied.append(_apply(sim, ch, rt.table_source.current(), applied, now))
                    view.chapter(elapsed, applied[-1].headline)
                for t, ev in events[shown:]:
                    view.event(t - story_start, ev)
                shown = len(events)
                overall = traffic.total
                view.update(
                    Snapshot(
                        elapsed,
                        total,
                        applied[-1].headline if applied else "warm-up: steady traffic on every route",
                        rt.table_source.current().to_dict(),
                        traffic.stats,
                        overall,
                    )
                )
                if elapsed >= total:
                    break
                await asyncio.sleep(_REFRESH_S)

        await asyncio.gather(*moment_tasks)
        if not opts.forever:
            await traffic.stop()
        await rt.sink.flush()
        await _settle_webhooks(receiver, events, scaled(5, speed, 2.0))
        urls = {
            "status API": f"{control_url}/api/v1/table",
            "events": f"{control_url}/api/v1/events",
            "status page": f"{control_url}/",
            "metrics": f"{control_url}/metrics",
            "data plane (OpenAI base_url)": data_url,
            "CLI": f"turnout status --url {control_url} --watch",
        }
        summary = _summary(traffic, applied, events, receiver, urls, story_start)
        console.print(summary_renderable(summary))
        if opts.forever:
            console.print(
                f"[bold]--forever:[/bold] everything keeps running; try `turnout status --url {control_url} --watch`. Ctrl-C stops."
            )
            await _until_stopped()
        return 0 if summary.passed else 1
    return 1  # pragma: no cover - the exit stack re-raises instead


async def _until_stopped() -> None:
    """Wait for Ctrl-C or SIGTERM; either ends the demo cleanly (servers closed, temp dir removed)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _apply(sim: Any, ch: Chapter, table: Any, applied: list[_Applied], now: float) -> _Applied:
    hit = {a.chapter.key: [t for f in a.faults for t in f.targets] for a in applied}
    if ch.clear:
        for a in applied:
            for f, fid in zip(a.faults, a.ids, strict=True):
                if f.fault != "region_blocked":
                    sim.clear_faults(fault_id=fid)
    headline, faults = ch.plan(table, hit)
    ids = [
        sim.set_fault(f.provider, f.fault, model=f.model, duration=f.duration, probability=f.probability, **f.params)
        for f in faults
    ]
    return _Applied(ch, headline, faults, ids, now)


async def _settle_webhooks(receiver: WebhookReceiver, events: list[tuple[float, Event]], timeout: float) -> None:
    """Give the dispatcher a moment to deliver what the story produced (it retries on its own schedule)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(receiver.deliveries) < len(events):
        await asyncio.sleep(0.1)


def _summary(
    traffic: Traffic,
    applied: list[_Applied],
    events: list[tuple[float, Event]],
    receiver: WebhookReceiver,
    urls: dict[str, str],
    story_start: float,
) -> Summary:
    overall = traffic.total
    failover_times = sorted(t for s in traffic.stats.values() for t in s.failover_times)
    results: list[FaultResult] = []
    for i, a in enumerate(applied):
        if not a.faults:
            continue
        until = applied[i + 1].at if i + 1 < len(applied) else float("inf")
        reaction, took = _reaction(a, events)
        results.append(
            FaultResult(
                a.headline, a.at - story_start, reaction, took, sum(1 for t in failover_times if a.at <= t < until)
            )
        )
    counts = Counter(ev.type for _, ev in events)
    problems: list[str] = []
    if overall.errors:
        problems.append(f"{overall.errors} client requests failed, e.g. {overall.error_samples[:2]}")
    problems.extend(f"no {t} event happened" for t in REQUIRED_EVENTS if not counts.get(t))
    if overall.requests == 0:
        problems.append("no client request completed")
    hooks = [(d.type, d.subject, d.verified) for d in receiver.deliveries]
    return Summary(overall, results, dict(counts), hooks, urls, passed=not problems, problems=problems)
