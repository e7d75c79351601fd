"""The running control plane's parts in one place, handed to API handlers and the data plane.

The foundation work owns the lifecycle (store, scheduler, pipeline, reload); other parts only read:
- `rt.table_source.current()` — the published Table (lock-free read);
  `await rt.table_source.wait_newer(version, timeout)` — long-poll for a newer one;
- `rt.sink.submit(obs)` — the one observation pipe (probes and live traffic); never blocks;
- `rt.store`, `rt.bus`, `rt.config`, `rt.clock`, `rt.metrics`, `rt.health`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from controlplane.clock import Clock, SystemClock
from controlplane.config import Config, ProviderConfig
from controlplane.config_loader import load_config
from controlplane.domain import Observation
from controlplane.events import EventBus
from controlplane.metrics import Metrics, observe_table
from controlplane.table import Table

if TYPE_CHECKING:
    import aiohttp

    from adapters.base import Adapter
    from controlplane.health import HealthModel
    from controlplane.pipeline import OutcomeLike, Pipeline
    from controlplane.publisher import TablePublisher
    from controlplane.scheduler import ProbeScheduler
    from controlplane.store import Store
    from probes.context import ProbeFn

__all__ = ["TableSource", "ObservationSink", "Runtime", "TICK_INTERVAL", "HOUSEKEEPING_INTERVAL"]

log = logging.getLogger("turnout.runtime")

TICK_INTERVAL = 1.0  # health.tick: open → half_open, drain expiry, rerank
HOUSEKEEPING_INTERVAL = 3600.0  # retention pruning


class TableSource(Protocol):
    def current(self) -> Table: ...

    async def wait_newer(self, version: int, timeout: float) -> Table | None:
        """Return a table with version > `version` as soon as one exists; None at the deadline."""
        ...


class ObservationSink(Protocol):
    def submit(self, obs: Observation) -> None:
        """Hand one observation to the pipeline (breaker → ranker → table, and the store). Never blocks."""
        ...


class Runtime:
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
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.config_path = config_path
        self.metrics = metrics or Metrics()
        self.bus = EventBus()
        self.probes_enabled, self.webhooks_enabled = probes, webhooks
        self._adapter_for = adapter_for
        self._kinds = kinds
        self.fire = fire  # False: build the scheduler but let the caller drive it (tests: run_due / run_probe_job)
        self.store: Store = None  # type: ignore[assignment]  # set by start()
        self.health: HealthModel = None  # type: ignore[assignment]
        self.table_source: TablePublisher = None  # type: ignore[assignment]
        self.sink: Pipeline = None  # type: ignore[assignment]
        self.session: aiohttp.ClientSession = None  # type: ignore[assignment]
        self.scheduler: ProbeScheduler = None  # type: ignore[assignment]
        self._dispatcher: asyncio.Task[None] | None = None
        # Set by a scale-out control replica: True only while this process holds the leader lease.
        self.leadership_fence: Callable[[], bool] | None = None
        self.started = False

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        import aiohttp

        from controlplane.health import HealthModel
        from controlplane.pipeline import Pipeline
        from controlplane.publisher import TablePublisher
        from controlplane.scheduler import ProbeScheduler
        from controlplane.store import Store
        from probes import PROBE_KINDS

        cfg = self.config
        self.store = await asyncio.to_thread(Store, cfg.database.url, self.clock)
        snapshot, last_table = await asyncio.to_thread(self.store.load_health)
        try:
            self.health = HealthModel(cfg, self.clock, snapshot=snapshot, last_table=last_table)
        except (ValueError, KeyError, TypeError) as exc:  # an unreadable snapshot must not keep us down
            log.warning("health snapshot not usable (%s); breakers start fresh, table versions continue", exc)
            self.health = HealthModel(cfg, self.clock, last_table=last_table)
        table = self.health.table
        fresh = last_table is None or table.version > last_table.version
        # The first table is durable before anyone can read it (a restart never goes back in versions).
        await asyncio.to_thread(self.store.save_health, self.health.snapshot(), table if fresh else None)
        self.table_source = TablePublisher(table)
        observe_table(self.metrics, table)
        self.sink = Pipeline(
            store=self.store,
            health=self.health,
            publisher=self.table_source,
            bus=self.bus,
            clock=self.clock,
            metrics=self.metrics,
            config=lambda: self.config,
        )
        if self.webhooks_enabled:
            self._start_webhooks()
        self.sink.start()
        self.session = aiohttp.ClientSession(headers={"User-Agent": "turnout-probe/0.1"})
        self.scheduler = ProbeScheduler(
            cfg,
            self.clock,
            session=self.session,
            sink=self.sink,
            adapter_for=self._adapter_for or _registry_adapter,
            metrics=self.metrics,
            health=self.health,
            kinds=(self._kinds or PROBE_KINDS) if self.probes_enabled else {},
        )
        self.scheduler.add_periodic("tick", self.sink.tick, TICK_INTERVAL)
        self.scheduler.add_periodic("housekeeping", lambda: self.sink.housekeeping(self.config), HOUSEKEEPING_INTERVAL)
        if self.fire:
            self.scheduler.start()
        self.metrics.ready.set(1)
        self.started = True
        log.info(
            "control plane started: %d targets, %d routes, %d probe jobs, table v%d",
            len(cfg.targets()),
            len(cfg.routes),
            len(self.scheduler.jobs),
            table.version,
        )

    def _start_webhooks(self) -> None:
        try:
            from controlplane.webhooks.service import start_dispatcher
        except ModuleNotFoundError:
            return
        self._dispatcher = start_dispatcher(self)

    async def stop(self) -> None:
        """Stop probing, finish the queued observations, persist the snapshot, close everything."""
        if not self.started:
            return
        self.started = False
        self.metrics.ready.set(0)
        await self.scheduler.shutdown()
        await self.sink.stop()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
            self._dispatcher = None
        await self.session.close()
        await asyncio.to_thread(self.store.close)
        log.info("control plane stopped at table v%d", self.table_source.current().version)

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
            from controlplane.errors import ConfigError

            raise ConfigError(
                self.config.source, "", "this runtime was not started from a file", "start with turnout serve -c FILE"
            )
        cfg = await asyncio.to_thread(load_config, self.config_path)
        await self.apply_config(cfg, actor=actor)
        return cfg

    async def apply_config(self, cfg: Config, *, actor: str = "system") -> None:
        """Adopt a validated config: health first (breakers of unchanged targets kept), then the probe plan."""
        old = self.config
        if cfg.database.url != old.database.url:
            log.warning("database.url changed; it takes effect on the next restart")
        await self.sink.reload(cfg, actor=actor)
        self.config = cfg
        self.scheduler.set_config(cfg)
        log.info("config reloaded (hash %s -> %s)", old.hash, cfg.hash)

    def status(self) -> dict[str, Any]:
        """A short liveness summary (for /readyz and logs)."""
        return {
            "started": self.started,
            "table_version": self.table_source.current().version if self.table_source else None,
            "config_hash": self.config.hash,
            "observations": self.sink.processed if self.sink else 0,
        }


def _registry_adapter(provider: ProviderConfig) -> Adapter:
    from adapters.registry import get_adapter

    return get_adapter(provider.adapter)
