"""A running Turnout control plane for the metrics/status-page integration tests, driven through a failover.

Real parts: controlplane.runtime.Runtime (store on SQLite in tmp_path, health model, publisher, pipeline,
probe scheduler) and the control app from controlplane.control_app (status API, status page, /metrics) on a
free loopback port. Probes are scripted (the scheduler's real `run_probe_job` path runs them, so probe metrics
are the real ones); the clock is a FakeClock the scenario advances. Until `turnout serve` runs the data plane
against the simulator here, `Traffic` writes the data-plane, webhook and scheduler-lag metrics the way
adapters/proxy.py, controlplane/webhooks/dispatcher.py and controlplane/scheduler.py do, so every dashboard
query has live series to read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from controlplane.clock import FakeClock
from controlplane.config import parse_config
from controlplane.control_app import build_control_app
from controlplane.domain import ErrorClass, Observation, Scope, Source, State, TargetRef
from controlplane.metrics import observe_probe
from controlplane.runtime import Runtime
from probes import ProbeContext
from tests.support import free_port

__all__ = ["CONFIG", "Script", "Turnout", "Traffic", "running_turnout"]

CONFIG = """
database: {{url: "sqlite:///{db}"}}
providers:
  - id: openai
    adapter: openai
    base_url: http://127.0.0.1:9/openai/v1
    models: [{{name: gpt-4o}}, {{name: gpt-4o-mini}}]
  - id: anthropic
    adapter: anthropic
    base_url: http://127.0.0.1:9/anthropic
    models: [{{name: claude-sonnet-4}}]
  - id: deepseek
    adapter: openai
    base_url: http://127.0.0.1:9/deepseek/v1
    models: [{{name: deepseek-chat}}]
routes:
  - {{name: frontier, targets: [openai/gpt-4o, anthropic/claude-sonnet-4, deepseek/deepseek-chat]}}
  - {{name: cheap-fast, targets: [deepseek/deepseek-chat]}}
  - {{name: mini, targets: [openai/gpt-4o-mini, anthropic/claude-sonnet-4]}}
probes: {{interval: 30s, kinds: {{completion: {{interval: 30s}}}}}}
"""
TARGETS = ("openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4", "deepseek/deepseek-chat")


@dataclass
class Script:
    """What the scripted completion probe answers per target (ok unless told otherwise)."""

    answer: dict[str, ErrorClass] = field(default_factory=dict)

    async def probe(self, target: TargetRef, ctx: ProbeContext) -> list[Observation]:
        at = ctx.clock.wall()
        ec = self.answer.get(target.key, ErrorClass.OK)
        if ec is ErrorClass.OK:
            return [Observation.success(target.key, kind="completion", at=at, latency_s=0.4, ttft_s=0.13,
                                        tokens_per_s=60.0, headroom=0.6)]
        if ec is ErrorClass.REGION_BLOCKED:  # the whole egress region is refused (provider-semantics.md §6)
            return [Observation.failure(target.key, ec, kind="completion", at=at, status=403, scope=Scope.EGRESS,
                                        code="unsupported_country_region_territory")]
        return [Observation.failure(target.key, ec, kind="completion", at=at, status=503)]


@dataclass
class Turnout:
    url: str
    rt: Runtime
    script: Script
    clock: FakeClock

    def live_ok(self, target: str) -> Observation:
        return Observation.success(target, kind="live", source=Source.LIVE, at=self.clock.wall(), latency_s=1.2,
                                   ttft_s=0.3, headroom=0.5)

    async def probe_all(self) -> None:
        for t in TARGETS:
            await self.rt.scheduler.run_probe_job(t, "completion")
        await self.rt.sink.flush()

    async def failover_scenario(self) -> None:
        """Healthy → deepseek withdrawn (region block, whole egress) → openai/gpt-4o opens on 5xx."""
        for _ in range(6):
            await self.probe_all()
            for t in TARGETS:
                self.rt.sink.submit(self.live_ok(t))
            self.clock.advance(5)
        self.script.answer["deepseek/deepseek-chat"] = ErrorClass.REGION_BLOCKED
        self.script.answer["openai/gpt-4o"] = ErrorClass.SERVER_ERROR
        for _ in range(6):
            await self.probe_all()
            self.clock.advance(1)
        states = self.rt.health.states()
        assert states["deepseek/deepseek-chat"] is State.WITHDRAWN and states["openai/gpt-4o"] is State.OPEN, states


class Traffic:
    """Steady load while Prometheus scrapes: histograms and counters keep moving between samples."""

    def __init__(self, t: Turnout) -> None:
        self.t = t
        self.m = t.rt.metrics

    def step(self) -> None:
        m = self.m
        for route, outcome, n in (("frontier", "ok", 8), ("frontier", "exhausted", 2), ("cheap-fast", "exhausted", 3),
                                  ("mini", "ok", 5), ("mini", "client_error", 1)):
            m.dataplane_requests_total.labels(route, outcome).inc(n)
            m.dataplane_request_duration_seconds.labels(route, "true").observe(0.8)
        m.dataplane_attempts_total.labels("frontier", "openai", "gpt-4o", "server_error").inc()
        m.dataplane_attempts_total.labels("frontier", "anthropic", "claude-sonnet-4", "ok").inc(8)
        m.dataplane_failovers_total.labels("frontier", "server_error").inc()
        m.dataplane_tokens_total.labels("frontier", "anthropic", "claude-sonnet-4", "output").inc(120)
        m.dataplane_cost_usd_total.labels("frontier", "anthropic", "claude-sonnet-4").inc(0.002)
        m.dataplane_reports_dropped_total.inc(0)
        m.webhook_deliveries_total.labels(outcome="delivered").inc()
        m.webhook_deliveries_total.labels(outcome="failed").inc()
        m.webhook_queue_depth.set(150)  # a backlog: the receiver is failing
        m.webhook_delivery_seconds.observe(0.3)
        m.scheduler_lag_seconds.observe(8.0)  # probes start late: the scheduler is saturated
        for target in ("anthropic/claude-sonnet-4", "openai/gpt-4o-mini"):
            observe_probe(m, target, "completion", 0.5)  # the probe runs themselves happen in probe_all()
            self.t.rt.sink.submit(self.t.live_ok(target))

    async def run(self, period: float = 0.25) -> None:
        while True:
            self.step()
            await asyncio.sleep(period)  # paces the load generator; nothing waits on this for a decision


@contextlib.asynccontextmanager
async def running_turnout(tmp_path: Path) -> AsyncIterator[Turnout]:
    clock = FakeClock()
    script = Script()
    config = parse_config(CONFIG.format(db=tmp_path / "turnout.db"), env={})
    rt = Runtime(config, clock=clock, kinds={"completion": script.probe}, fire=False, webhooks=False)
    await rt.start()
    runner: web.AppRunner | None = None
    try:
        runner = web.AppRunner(build_control_app(rt))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield Turnout(f"http://127.0.0.1:{port}", rt, script, clock)
    finally:
        if runner is not None:
            await runner.cleanup()
        await rt.stop()
