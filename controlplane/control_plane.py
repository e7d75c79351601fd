"""The control role's parts composed once: store → health → publisher → pipeline → webhooks → probe scheduler.

`ControlPlane` meets every reader's seam (controlplane/seams.py) for its own process: the control app and, with
`--role all`, the data plane read `config`, `table_source`, `sink`, `store`, `health`, `bus`, `clock` and
`metrics` from it. `start()` builds the running parts together (one frozen `_Running`), `stop()` tears them
down in reverse; nothing is reassigned while they run. A scale-out control replica
(controlplane/scaleout/control_replica.py) starts one on election and stops it on demotion; its own readers
hold the replica, not this object.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from sqlalchemy import Engine

from adapters.base import Adapter
from adapters.registry import get_adapter
from controlplane.clock import Clock, SystemClock
from controlplane.config import Config, ProviderConfig
from controlplane.config_loader import load_config
from controlplane.decisions import Decision
from controlplane.errors import ConfigError, TurnoutError
from controlplane.events import EventBus
from controlplane.fencing import LeaseFence
from controlplane.health import HealthModel
from controlplane.metrics import Metrics, observe_table
from controlplane.pipeline import OutcomeLike, Pipeline
from controlplane.publisher import TablePublisher
from controlplane.scheduler import ProbeScheduler
from controlplane.seams import Leadership
from controlplane.store import Store
from controlplane.webhooks.service import start_dispatcher
from probes import PROBE_KINDS
from probes.budget import SpendBudget
from probes.context import ProbeFn

__all__ = ["ControlPlane", "TICK_INTERVAL", "HOUSEKEEPING_INTERVAL", "RECHECK_POLL_INTERVAL"]

log = logging.getLogger("turnout.control_plane")

TICK_INTERVAL = 1.0  # health.tick: open → half_open, drain expiry, rerank
HOUSEKEEPING_INTERVAL = 3600.0  # retention pruning
RECHECK_POLL_INTERVAL = 5.0  # due rechecks of withdrawn targets start within this (docs/breaker.md)


@dataclass(frozen=True, slots=True)
class _Running:
    """The parts `start()` built, together: they live and die as one."""

    store: Store
    health: HealthModel
    publisher: TablePublisher
    pipeline: Pipeline
    session: aiohttp.ClientSession
    scheduler: ProbeScheduler
    dispatcher: asyncio.Task[None] | None


class ControlPlane:
    """Owns the control plane's lifecycle: store → health (resumed from the store) → publisher → pipeline →
    webhook dispatcher → HTTP session → probe scheduler. `start()` builds and starts them, `stop()` tears them
    down in reverse; operator actions and reloads go through the pipeline, one at a time."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        config_path: str | None = None,
        metrics: Metrics | None = None,
        probes: bool = True,
        webhooks: bool = True,
        adapter_for: Callable[[ProviderConfig], Adapter] | None = None,
        kinds: Mapping[str, ProbeFn] | None = None,
        fire: bool = True,
        fence: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.config_path = config_path
        self.metrics = metrics or Metrics()
        self.bus = EventBus()
        self.probes_enabled, self.webhooks_enabled = probes, webhooks
        self._adapter_for = adapter_for or _registry_adapter
        self._kinds = kinds
        self.fire = fire  # False: build the scheduler but let the caller drive it (tests: run_due / run_probe_job)
        # A scale-out control replica passes "do I still hold the leader lease?": webhooks stop leaving at once.
        self._fence = fence
        # Set by a control replica before each start (its term): the database refuses this leader's health and
        # event writes once the term is over (controlplane/fencing.py).
        self.write_fence: LeaseFence | None = None
        self._running: _Running | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._spend_flush: asyncio.Task[None] | None = None
        self.started = False

    # -- the running parts (readers' seams) -------------------------------------------------------
    @property
    def running(self) -> _Running:
        if self._running is None:
            raise RuntimeError("the control plane has not been started")
        return self._running

    @property
    def store(self) -> Store:
        return self.running.store

    @property
    def health(self) -> HealthModel:
        return self.running.health

    @property
    def table_source(self) -> TablePublisher:
        return self.running.publisher

    @property
    def sink(self) -> Pipeline:
        return self.running.pipeline

    @property
    def scheduler(self) -> ProbeScheduler:
        return self.running.scheduler

    @property
    def leadership(self) -> Leadership | None:
        return None  # one process: it always leads

    @property
    def decision_engine(self) -> Engine:
        return self.store.engine

    @property
    def forward_decision(self) -> Callable[[Decision], None] | None:
        return None  # this process has a store: the decision log writes there itself

    def readiness_checks(self) -> Mapping[str, bool]:
        # Reads may work while writes fail (full disk, read-only): the pipeline says so.
        writes = self._running.pipeline.store_ok if self._running is not None else False
        return {"store_writes": writes, "started": self.started}

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        store = await asyncio.to_thread(Store, cfg.database.url, self.clock)
        store.fence = self.write_fence
        snapshot, last_table = await asyncio.to_thread(store.load_health)
        try:
            health = HealthModel(cfg, self.clock, snapshot=snapshot, last_table=last_table)
        except (ValueError, KeyError, TypeError) as exc:  # an unreadable snapshot must not keep us down
            log.warning("health snapshot not usable (%s); breakers start fresh, table versions continue", exc)
            health = HealthModel(cfg, self.clock, last_table=last_table)
        table = health.table
        fresh = last_table is None or table.version > last_table.version
        # The first table is durable before anyone can read it (a restart never goes back in versions).
        await asyncio.to_thread(store.save_health, health.snapshot(), table if fresh else None)
        publisher = TablePublisher(table)
        observe_table(self.metrics, table)
        pipeline = Pipeline(
            store=store,
            health=health,
            publisher=publisher,
            bus=self.bus,
            clock=self.clock,
            metrics=self.metrics,
            config=lambda: self.config,
        )
        dispatcher = (
            start_dispatcher(store, self.bus, self.clock, self.metrics, lambda: self.config.webhooks, fence=self._fence)
            if self.webhooks_enabled
            else None
        )
        pipeline.start()
        # The paid-probe spend of today, from the store: a restart must not hand every provider a fresh budget.
        self._loop = asyncio.get_running_loop()
        budget = SpendBudget(self.clock, ledger=store, on_change=self._spend_changed)
        await asyncio.to_thread(budget.load)
        session = aiohttp.ClientSession(headers={"User-Agent": "turnout-probe/0.1"})
        scheduler = ProbeScheduler(
            cfg,
            self.clock,
            session=session,
            sink=pipeline,
            adapter_for=self._adapter_for,
            metrics=self.metrics,
            health=health,
            kinds=(self._kinds or PROBE_KINDS) if self.probes_enabled else {},
            budget=budget,
        )
        scheduler.add_periodic("tick", pipeline.tick, TICK_INTERVAL)
        if self.probes_enabled:
            scheduler.add_periodic("rechecks", scheduler.run_due_rechecks, RECHECK_POLL_INTERVAL)
        scheduler.add_periodic("housekeeping", lambda: pipeline.housekeeping(self.config), HOUSEKEEPING_INTERVAL)
        self._running = _Running(store, health, publisher, pipeline, session, scheduler, dispatcher)
        if self.fire:
            scheduler.start()
        self.metrics.ready.set(1)
        self.started = True
        log.info(
            "control plane started: %d targets, %d routes, %d probe jobs, table v%d",
            len(cfg.targets()),
            len(cfg.routes),
            len(scheduler.jobs),
            table.version,
        )

    def stop_webhooks(self) -> None:
        """Stop delivering webhooks now (a demoted leader: no delivery may leave after it stepped down)."""
        if self._running is not None and self._running.dispatcher is not None:
            self._running.dispatcher.cancel()

    async def stop(self) -> None:
        """Stop probing, finish the queued observations, persist the snapshot, close everything."""
        if not self.started:
            return
        self.started = False
        self.metrics.ready.set(0)
        r = self.running
        await r.scheduler.shutdown()
        await r.pipeline.stop()
        if r.dispatcher is not None:
            r.dispatcher.cancel()
            await asyncio.gather(r.dispatcher, return_exceptions=True)
        await r.session.close()
        if self._spend_flush is not None:
            await asyncio.gather(self._spend_flush, return_exceptions=True)
        await self._flush_spend()
        await asyncio.to_thread(r.store.close)
        log.info("control plane stopped at table v%d", r.publisher.current().version)

    # -- paid-probe spend ---------------------------------------------------------------------------
    def _spend_changed(self) -> None:
        """The budget changed (a reservation or a settlement): save it soon, off the loop, one save at a time."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._start_spend_flush)

    def _start_spend_flush(self) -> None:
        if self._running is not None and (self._spend_flush is None or self._spend_flush.done()):
            self._spend_flush = asyncio.get_running_loop().create_task(self._flush_spend(), name="turnout-spend")

    async def _flush_spend(self) -> None:
        budget = self.running.scheduler.budget
        while budget.dirty:
            try:
                await asyncio.to_thread(budget.flush)
            except TurnoutError as exc:  # kept in memory; the next change or the stop tries again
                log.warning("paid-probe spend not saved: %s", exc)
                return

    # -- operator actions -------------------------------------------------------------------------
    async def drain(
        self,
        *,
        target: str | None = None,
        provider: str | None = None,
        reason: str,
        until: datetime | None = None,
        actor: str,
    ) -> OutcomeLike:
        """Drain a target (or every target of a provider); audited as an event, survives restarts."""
        return await self.sink.drain(target=target, provider=provider, reason=reason, until=until, actor=actor)

    async def undrain(
        self, *, target: str | None = None, provider: str | None = None, actor: str, reason: str = ""
    ) -> OutcomeLike:
        return await self.sink.undrain(target=target, provider=provider, actor=actor, reason=reason)

    async def reload_config(self, *, actor: str = "system") -> Config:
        """Re-read the config file and apply it. An invalid file raises ConfigError and the old config stays."""
        if not self.config_path:
            raise ConfigError(
                self.config.source, "", "this runtime was not started from a file", "start with turnout serve -c FILE"
            )
        cfg = await asyncio.to_thread(load_config, self.config_path)
        await self.apply_config(cfg, actor=actor)
        return cfg

    async def apply_config(self, cfg: Config, *, actor: str = "system") -> None:
        """Adopt a validated config: health first (breakers of unchanged targets kept), then the probe plan.
        Not started (a following control replica): the config is kept for the next start."""
        old = self.config
        if cfg.database.url != old.database.url:
            log.warning("database.url changed; it takes effect on the next restart")
        if not self.started:
            self.config = cfg
            return
        await self.sink.reload(cfg, actor=actor)
        self.config = cfg
        self.scheduler.set_config(cfg)
        log.info("config reloaded (hash %s -> %s)", old.hash, cfg.hash)

    def status(self) -> dict[str, Any]:
        """A short liveness summary (for /readyz and logs)."""
        return {
            "started": self.started,
            "table_version": self._running.publisher.current().version if self._running else None,
            "config_hash": self.config.hash,
            "observations": self._running.pipeline.processed if self._running else 0,
        }


def _registry_adapter(provider: ProviderConfig) -> Adapter:
    return get_adapter(provider.adapter)
