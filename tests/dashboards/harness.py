"""A running control plane for the metrics/status-page integration tests, driven through a failover scenario.

Real parts: the config parser, Store (SQLite in tmp_path), HealthModel, TablePublisher, EventBus and Pipeline
(which reflects everything into Metrics), served over HTTP by `metrics_http` and `statuspage` on a free
loopback port. Until `turnout serve` runs the data plane, webhook dispatcher and probe scheduler together,
`Traffic` writes their metrics the way those parts do (adapters/proxy.py, controlplane/webhooks/dispatcher.py,
controlplane/scheduler.py), so every dashboard query has live series to read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from controlplane import metrics_http, statuspage
from controlplane.clock import FakeClock
from controlplane.config import Config, parse_config
from controlplane.domain import ErrorClass, Observation, Scope, Source, State
from controlplane.events import EventBus
from controlplane.health import HealthModel
from controlplane.metrics import Metrics, observe_probe, observe_table
from controlplane.pipeline import Pipeline
from controlplane.publisher import TablePublisher
from controlplane.store import Store
from tests.support import free_port

__all__ = ["CONFIG", "Turnout", "running_turnout"]

CONFIG = """
providers:
  - id: openai
    adapter: openai
    base_url: http://127.0.0.1:9/openai/v1
    models: [{name: gpt-4o}, {name: gpt-4o-mini}]
  - id: anthropic
    adapter: anthropic
    base_url: http://127.0.0.1:9/anthropic
    models: [{name: claude-sonnet-4}]
  - id: deepseek
    adapter: openai
    base_url: http://127.0.0.1:9/deepseek/v1
    models: [{name: deepseek-chat}]
routes:
  - {name: frontier, targets: [openai/gpt-4o, anthropic/claude-sonnet-4, deepseek/deepseek-chat]}
  - {name: cheap-fast, targets: [deepseek/deepseek-chat]}
  - {name: mini, targets: [openai/gpt-4o-mini, anthropic/claude-sonnet-4]}
"""


@dataclass
class _Rt:
    """The slice of controlplane.runtime.Runtime that metrics_http and statuspage read."""

    config: Config
    clock: FakeClock
    store: Store
    bus: EventBus
    table_source: TablePublisher
    metrics: Metrics


@dataclass
class Turnout:
    url: str
    rt: _Rt
    pipeline: Pipeline
    health: HealthModel

    def ok(self, target: str, *, source: Source = Source.PROBE, latency: float = 0.4) -> Observation:
        kind = "live" if source is Source.LIVE else "completion"
        return Observation.success(target, kind=kind, source=source, at=self.rt.clock.wall(), latency_s=latency,
                                   ttft_s=latency / 3, tokens_per_s=60.0, headroom=0.6)

    async def feed(self, observations: list[Observation]) -> None:
        for o in observations:
            self.pipeline.submit(o)
        await self.pipeline.flush()

    async def failover_scenario(self) -> None:
        """Healthy → deepseek withdrawn (region block, whole egress) → openai/gpt-4o opens on 5xx."""
        c = self.rt.clock
        healthy = ["openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4", "deepseek/deepseek-chat"]
        for _ in range(6):
            await self.feed([self.ok(t) for t in healthy] + [self.ok(t, source=Source.LIVE) for t in healthy])
            c.advance(5)
        await self.feed([Observation.failure("deepseek/deepseek-chat", ErrorClass.REGION_BLOCKED, kind="completion",
                                             at=c.wall(), status=403, scope=Scope.EGRESS,
                                             code="unsupported_country_region_territory")])
        c.advance(1)
        for _ in range(6):
            await self.feed([Observation.failure("openai/gpt-4o", ErrorClass.SERVER_ERROR, kind="completion",
                                                 at=c.wall(), status=503)])
            c.advance(1)
        assert self.health.states()["deepseek/deepseek-chat"] is State.WITHDRAWN
        assert self.health.states()["openai/gpt-4o"] is State.OPEN


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
            obs = [self.t.ok(target), self.t.ok(target, source=Source.LIVE, latency=1.2)]
            observe_probe(m, target, "completion", 0.5)
            for o in obs:
                self.t.pipeline.submit(o)

    async def run(self, period: float = 0.25) -> None:
        while True:
            self.step()
            await asyncio.sleep(period)  # paces the load generator; nothing waits on this for a decision


@contextlib.asynccontextmanager
async def running_turnout(tmp_path: Path) -> AsyncIterator[Turnout]:
    clock = FakeClock()
    config = parse_config(CONFIG, env={})
    store = Store(f"sqlite:///{tmp_path / 'turnout.db'}", clock)
    health = HealthModel(config, clock)
    publisher = TablePublisher(health.table)
    bus = EventBus()
    metrics = Metrics()
    observe_table(metrics, health.table)
    pipeline = Pipeline(store=store, health=health, publisher=publisher, bus=bus, clock=clock, metrics=metrics,  # type: ignore[arg-type]  # HealthLike is narrower than HealthModel's signatures
                        config=lambda: config, snapshot_every=3600.0)
    rt = _Rt(config, clock, store, bus, publisher, metrics)
    app = web.Application()
    metrics_http.install(app, rt)
    statuspage.install(app, rt)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    pipeline.start()
    try:
        yield Turnout(f"http://127.0.0.1:{port}", rt, pipeline, health)
    finally:
        await pipeline.stop()
        await runner.cleanup()
        store.close()
