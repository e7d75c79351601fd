"""The observation pipeline: the one pipe from probes and live traffic to health, store, table and events.

`submit(obs)` never blocks: it queues. One task drains the queue in batches and, for each batch, in this
order: store the observations, let the health model ingest them, persist its events and its snapshot with
any new table (one transaction each), and only then publish the table and the events and update metrics.
So whatever a reader has seen is already durable, and a restart never republishes a stale version as new.
Operator actions (drain, undrain, reload) and the periodic tick go through the same lock, one at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from controlplane.clock import Clock
from controlplane.config import Config
from controlplane.domain import Observation
from controlplane.errors import TurnoutError
from controlplane.events import Event, EventBus
from controlplane.metrics import (
    Metrics,
    observe_event,
    observe_observation,
    observe_recheck,
    observe_table,
    observe_transition,
)
from controlplane.table import Table

if TYPE_CHECKING:
    from controlplane.store import Store

__all__ = ["Pipeline", "HealthLike", "OutcomeLike", "Publisher"]

log = logging.getLogger("turnout.pipeline")


class OutcomeLike(Protocol):
    """What a health mutator returns (controlplane.health.Outcome)."""

    @property
    def transitions(self) -> list[Any]: ...
    @property
    def events(self) -> list[Event]: ...
    @property
    def table(self) -> Table | None: ...
    @property
    def rechecks(self) -> list[tuple[str, str]]: ...


class HealthLike(Protocol):
    """The parts of controlplane.health.HealthModel the pipeline drives."""

    @property
    def table(self) -> Table: ...
    def ingest_many(self, obs_list: Iterable[Observation]) -> OutcomeLike: ...
    def tick(self) -> OutcomeLike: ...
    def drain(
        self, *, target: str | None = ..., provider: str | None = ..., reason: str, until: datetime | None, actor: str
    ) -> OutcomeLike: ...
    def undrain(
        self, *, target: str | None = ..., provider: str | None = ..., actor: str, reason: str = ...
    ) -> OutcomeLike: ...
    def set_config(self, config: Config) -> OutcomeLike: ...
    def snapshot(self) -> dict[str, Any]: ...


class Publisher(Protocol):
    def publish(self, table: Table) -> None: ...


@dataclass
class _Result:
    transitions: list[Any] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    table: Table | None = None
    rechecks: list[tuple[str, str]] = field(default_factory=list)


_STOP = object()


class Pipeline:
    """Implements controlplane.seams.ObservationSink; also the serialised entry for operator actions."""

    def __init__(
        self,
        *,
        store: Store,
        health: HealthLike,
        publisher: Publisher,
        bus: EventBus,
        clock: Clock,
        metrics: Metrics | None = None,
        config: Callable[[], Config] | None = None,
        batch_max: int = 1000,
        queue_max: int = 100_000,
        snapshot_every: float = 5.0,
        write_every: float = 0.25,
        write_batch: int = 2000,
    ) -> None:
        self.store, self.health, self.publisher, self.bus, self.clock, self.metrics = (
            store,
            health,
            publisher,
            bus,
            clock,
            metrics,
        )
        self._config = config
        self.batch_max = batch_max
        self.snapshot_every = snapshot_every
        self._queue: asyncio.Queue[Observation | object] = asyncio.Queue(queue_max)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._pending_events: list[Event] = []  # not yet durable (store was failing): retried next commit
        self._unpublished: Table | None = None  # made by health, not yet durable
        self._last_snapshot = clock.monotonic()
        # Raw observations are written behind the health model, in batches (at most `write_every` seconds or
        # `write_batch` observations behind): live traffic brings one per request, and a thread hop plus a
        # transaction per small batch cost more than the request itself (bench/dataplane).
        self.write_every, self.write_batch = write_every, write_batch
        self._unwritten: list[Observation] = []
        self._write_due_at = 0.0  # loop time by which the oldest unwritten observation must be written
        self._idle = asyncio.Event()
        self._idle.set()
        self.dropped = 0
        self.processed = 0
        self.store_failures = 0
        self._failures_at_outage = 0
        self.store_ok = True  # False from a failed write until the next successful one (readiness reads it)

    # -- the sink -------------------------------------------------------------------------------
    def submit(self, obs: Observation) -> None:
        """Queue one observation; never blocks. A full queue drops it (counted) rather than stall a probe."""
        try:
            self._queue.put_nowait(obs)
            self._idle.clear()
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("observation queue full: %d dropped so far", self.dropped)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="turnout-pipeline")

    async def stop(self) -> None:
        """Process what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.put(_STOP)
        task, self._task = self._task, None
        await task
        async with self._lock:  # a clean stop writes what is pending and leaves the freshest snapshot behind
            await self._write_observations()
            await self._commit(_Result(), snapshot=True)

    async def flush(self) -> None:
        """Wait until everything submitted so far is processed (tests, shutdown)."""
        if self._task is None:
            await self.process_pending()
            return
        await self._idle.wait()
        async with self._lock:
            await self._write_observations()

    async def _run(self) -> None:
        while True:
            if self._unwritten:  # wait for more, but not past the moment the pending ones are due
                try:
                    async with asyncio.timeout_at(self._write_due_at):
                        first = await self._queue.get()
                except TimeoutError:
                    async with self._lock:
                        await self._write_observations()
                    continue
            else:
                first = await self._queue.get()
            batch: list[Observation] = []
            stop = first is _STOP
            if not stop:
                batch.append(first)  # type: ignore[arg-type]
                while len(batch) < self.batch_max and not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)  # type: ignore[arg-type]
            if batch:
                try:
                    await self.process(batch)
                except Exception:  # never let one bad batch end the pipe
                    log.exception("pipeline batch of %d failed", len(batch))
            if self._queue.empty():
                self._idle.set()
            if stop:
                return

    async def process_pending(self) -> None:
        """Process everything queued, inline (used when the background task is not running)."""
        batch: list[Observation] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not _STOP:
                batch.append(item)  # type: ignore[arg-type]
        if batch:
            await self.process(batch)
        self._idle.set()

    # -- one batch ------------------------------------------------------------------------------
    async def process(self, batch: list[Observation]) -> OutcomeLike:
        async with self._lock:
            outcome = self.health.ingest_many(batch)  # first: the table reacts before anything is written
            await self._commit(outcome)
            if not self._unwritten:
                self._write_due_at = asyncio.get_running_loop().time() + self.write_every
            self._unwritten.extend(batch)
            if (
                self._task is None
                or len(self._unwritten) >= self.write_batch
                or asyncio.get_running_loop().time() >= self._write_due_at
            ):
                await self._write_observations()
        self.processed += len(batch)
        if self.metrics is not None:
            for o in batch:
                observe_observation(self.metrics, o)
        return outcome

    async def _write_observations(self) -> None:
        """Write the pending raw observations (caller holds the lock). A failed write is counted and the batch
        dropped: health has already learnt from it, and the store catching up matters less."""
        batch, self._unwritten = self._unwritten, []
        if not batch:
            return
        try:
            await asyncio.to_thread(self.store.add_observations, batch)
            self._store_wrote()
        except TurnoutError as exc:
            self._store_failed("add_observations", exc)

    async def _commit(self, outcome: OutcomeLike, *, snapshot: bool = False) -> None:
        """Persist events, snapshot and table; publish only what is durable."""
        events = self._pending_events + list(outcome.events)
        table = outcome.table or self._unpublished
        stored: list[Event] = []
        if events:
            try:
                stored = await asyncio.to_thread(self.store.append_events, events)
                self._pending_events = []
                self._store_wrote()
            except TurnoutError as exc:
                self._pending_events = events
                self._store_failed("append_events", exc)
        due = self.clock.monotonic() - self._last_snapshot >= self.snapshot_every
        if table is not None or stored or outcome.transitions or snapshot or due:
            try:
                await asyncio.to_thread(self.store.save_health, self.health.snapshot(), table)
                self._last_snapshot = self.clock.monotonic()
                self._unpublished = None
                self._store_wrote()
            except TurnoutError as exc:
                self._unpublished = table
                self._store_failed("save_health", exc)
                table = None  # not durable: not published either
        if table is not None:
            self.publisher.publish(table)
            if self.metrics is not None:
                observe_table(self.metrics, table)
        metrics_only = self._config is not None and self._config().breaker.mode == "metrics_only"
        if self.metrics is not None:
            for t in outcome.transitions:
                observe_transition(self.metrics, t, would_block=metrics_only)
            for target, result in outcome.rechecks:
                observe_recheck(self.metrics, target, result)
        for e in stored:
            self.bus.publish(e)
            if self.metrics is not None:
                observe_event(self.metrics, e)

    def _store_failed(self, op: str, exc: Exception) -> None:
        self.store_failures += 1
        if self.metrics is not None:
            self.metrics.ready.set(0)
        if self.store_ok:  # one clear line per outage (a full disk fails every write, several a second)
            self.store_ok = False
            self._failures_at_outage = self.store_failures - 1
            log.error(
                "store %s failed (%s); serving the last durable table, not ready until writes succeed again; "
                "further failures are counted, not logged",
                op,
                exc,
            )
        else:
            log.debug("store %s failed again (%s)", op, exc)

    def _store_wrote(self) -> None:
        if not self.store_ok:
            self.store_ok = True
            if self.metrics is not None:
                self.metrics.ready.set(1)
            log.warning(
                "store writes succeed again after %d failed writes", self.store_failures - self._failures_at_outage
            )

    # -- operator actions and housekeeping (serialised with batches) ----------------------------
    async def drain(
        self,
        *,
        target: str | None = None,
        provider: str | None = None,
        reason: str,
        until: datetime | None = None,
        actor: str,
    ) -> OutcomeLike:
        async with self._lock:
            outcome = self.health.drain(target=target, provider=provider, reason=reason, until=until, actor=actor)
            await self._commit(outcome, snapshot=True)
        return outcome

    async def undrain(
        self, *, target: str | None = None, provider: str | None = None, actor: str, reason: str = ""
    ) -> OutcomeLike:
        async with self._lock:
            outcome = self.health.undrain(target=target, provider=provider, actor=actor, reason=reason)
            await self._commit(outcome, snapshot=True)
        return outcome

    async def reload(self, config: Config, *, actor: str = "system") -> OutcomeLike:
        """Apply a new config to health; records `config.reloaded` (with the new hash) after its effects."""
        async with self._lock:
            outcome = self.health.set_config(config)
            reloaded = Event(
                "config.reloaded",
                self.clock.wall(),
                config.source,
                {
                    "config_hash": config.hash,
                    "actor": actor,
                    "targets": len(config.targets()),
                    "routes": len(config.routes),
                },
                config_hash=config.hash,
            )
            result = _Result(list(outcome.transitions), [*outcome.events, reloaded], outcome.table)
            await self._commit(result, snapshot=True)
        return result

    async def tick(self) -> OutcomeLike:
        """Time-driven health changes (open → half_open, drain expiry); saves the snapshot now and then."""
        async with self._lock:
            outcome = self.health.tick()
            await self._commit(outcome)
        return outcome

    async def housekeeping(self, config: Config) -> dict[str, int]:
        """Retention: prune raw observations, rollups and events past their configured age."""
        db = config.database
        return await asyncio.to_thread(
            self.store.rollup_and_prune,
            self.clock.wall(),
            observation_retention=db.observation_retention,
            rollup_retention=db.rollup_retention,
            event_retention=db.event_retention,
        )
