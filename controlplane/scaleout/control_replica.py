"""Followers: a control replica that does not lead learns each new table version from the store.

`ControlReplica` runs one control replica: it follows until elected (controlplane/scaleout/leader.py), then leads.

The leader writes every table it publishes to `published_tables` before anyone can read it (the pipeline's
rule). On PostgreSQL a trigger on that table sends `NOTIFY turnout_table, '<version>'` in the same
transaction, so a follower hears of a version only once it is committed and readable; the follower then
reads the newest row and publishes it into its own TablePublisher, which its status API and long-polls
read. If the LISTEN connection breaks (or on SQLite), the follower polls every `poll_interval` seconds.
Versions only go up: a row older than what the follower already serves is ignored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

# Imported for their SQLModel tables: the store's one migration then creates them too.
import controlplane.decisions
import controlplane.webhooks.rows  # noqa: F401
from controlplane.clock import Clock
from controlplane.config import Config
from controlplane.control_plane import ControlPlane
from controlplane.decisions import Decision
from controlplane.domain import Observation
from controlplane.errors import TurnoutError
from controlplane.events import EventBus
from controlplane.fencing import LeaseFence
from controlplane.health import HealthModel
from controlplane.metrics import Metrics, observe_table
from controlplane.pipeline import OutcomeLike
from controlplane.publisher import TablePublisher
from controlplane.rows import PublishedTableRow
from controlplane.scaleout.leader import LeaderInfo, LeaseElector, pg_conninfo
from controlplane.seams import HealthDetail, Leadership, ObservationSink
from controlplane.store import Store
from controlplane.table import Table
from controlplane.webhooks.outbox import install_outbox

__all__ = [
    "TABLE_CHANNEL",
    "install_notify",
    "newest_table",
    "StoreFollower",
    "ControlReplica",
    "NotLeader",
    "lifecycle_for",
]

log = logging.getLogger("turnout.follow")

TABLE_CHANNEL = "turnout_table"
_TRIGGER_LOCK = 0x666F6C6C  # "foll": replicas starting together do not race on CREATE OR REPLACE

_TRIGGER_SQL = (
    "CREATE OR REPLACE FUNCTION turnout_notify_table() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN PERFORM pg_notify('{TABLE_CHANNEL}', NEW.version::text); RETURN NEW; END $$",
    "DROP TRIGGER IF EXISTS turnout_table_published ON published_tables",
    "CREATE TRIGGER turnout_table_published AFTER INSERT ON published_tables "
    "FOR EACH ROW EXECUTE FUNCTION turnout_notify_table()",
)


def install_notify(engine: Engine) -> bool:
    """Install the NOTIFY trigger on `published_tables` (PostgreSQL; idempotent). False on SQLite."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _TRIGGER_LOCK})
        for stmt in _TRIGGER_SQL:
            conn.execute(text(stmt))
    return True


def newest_table(engine: Engine, after: int = 0) -> Table | None:
    """The newest published table when its version is > `after`; None otherwise."""
    with Session(engine) as s:
        row = s.exec(
            select(PublishedTableRow)
            .where(PublishedTableRow.version > after)
            .order_by(col(PublishedTableRow.version).desc())
            .limit(1)
        ).first()
        return Table.from_dict(row.data) if row is not None else None


class StoreFollower:
    """Feeds `publisher` from the store. `refresh()` is one look (tests); `run()` listens and polls until
    cancelled. `on_table(table)` runs after each publish (e.g. to refresh a read-only health view)."""

    def __init__(
        self,
        engine: Engine,
        publisher: TablePublisher,
        *,
        conninfo: str | None = None,
        poll_interval: float = 2.0,
        on_table: Callable[[Table], None] | None = None,
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.conninfo = conninfo  # libpq conninfo for LISTEN; None: poll only
        self.poll_interval = poll_interval
        self.on_table = on_table
        self.notified = 0  # notifications received (tests, metrics)
        self.listening = False

    def refresh(self) -> Table | None:
        """Publish the newest stored table if it is newer than ours; return it (None when nothing new)."""
        table = newest_table(self.engine, self.publisher.version)
        if table is None:
            return None
        try:
            self.publisher.publish(table)
        except ValueError:  # someone published the same or a newer one meanwhile (e.g. we just became leader)
            return None
        if self.on_table is not None:
            try:
                self.on_table(table)
            except Exception:  # a broken view must not stop following
                log.exception("follower on_table callback failed for v%d", table.version)
        return table

    async def refresh_async(self) -> Table | None:
        try:
            return await asyncio.to_thread(self.refresh)
        except Exception as exc:  # store unreachable: keep serving what we have, try again later
            log.warning("follower: reading the newest table failed (%s)", type(exc).__name__)
            return None

    async def run(self) -> None:
        """Follow until cancelled: LISTEN when possible, poll otherwise; never gives up."""
        await self.refresh_async()
        backoff = self.poll_interval
        while True:
            if self.conninfo is not None:
                try:
                    await self._listen()
                    backoff = self.poll_interval
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "follower: LISTEN %s failed (%s); polling every %.1fs",
                        TABLE_CHANNEL,
                        type(exc).__name__,
                        self.poll_interval,
                    )
                finally:
                    self.listening = False
            # Polling fallback (SQLite, or while the LISTEN connection is down), then try LISTEN again.
            await asyncio.sleep(min(backoff, self.poll_interval))
            await self.refresh_async()
            backoff = min(backoff * 2, 30.0)

    async def _listen(self) -> None:
        import psycopg

        assert self.conninfo is not None
        async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
            await conn.execute(f"LISTEN {TABLE_CHANNEL}")
            self.listening = True
            # Anything published before LISTEN took effect would otherwise wait for the next version.
            await self.refresh_async()
            while True:
                got = False
                # The timeout doubles as the polling fallback: a missed notification costs one interval at most.
                async for _n in conn.notifies(timeout=self.poll_interval):
                    self.notified += 1
                    got = True
                    await self.refresh_async()
                if not got:
                    await self.refresh_async()
                    await conn.execute("SELECT 1")  # a dead connection raises here and we fall back to polling


# -- a control replica: follows until elected, leads until it steps down ------------------------------


class NotLeader(TurnoutError):
    """An operator action reached a follower: it must go to the leader."""

    def __init__(self, action: str, leader_url: str | None) -> None:
        self.action, self.leader_url = action, leader_url
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" at {self.leader_url}" if self.leader_url else ""
        return f"this control replica is a follower; send {self.action} to the leader{where}"

    def __repr__(self) -> str:
        return f"NotLeader(action={self.action!r}, leader_url={self.leader_url!r})"


class ControlReplica:
    """One of several control replicas on one PostgreSQL database: follows until elected, leads until demoted.

    What its readers (the control app) hold stays the same for the process's life, so nothing is swapped under
    them: `table_source` is this replica's own publisher, fed from the store while following (NOTIFY, polling
    fallback) and from the leader's publisher while leading, so long-polls never notice the switch; `store` is
    this replica's own store. The leader's parts are one `ControlPlane`, built from the store on election
    (breaker states from the snapshot, versions continuing from the newest stored table) and stopped on
    demotion. Observations and operator actions go to its pipeline while this replica leads; while it follows,
    operator actions are refused (NotLeader), live outcomes are counted and dropped, and a reload only keeps
    the new config for the next election. `health` is the leader's live model, or while following a read-only
    view rebuilt from the stored snapshot after each new table (read in a worker thread, set on the loop).
    """

    def __init__(
        self,
        config: Config,
        *,
        config_path: str | None = None,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        probes: bool = True,
        webhooks: bool = True,
        advertise_url: str = "",
        lease: float | None = None,
    ) -> None:
        # The leader's parts; webhooks leave only while this process holds the lease.
        self.plane = ControlPlane(
            config,
            clock=clock,
            config_path=config_path,
            metrics=metrics,
            probes=probes,
            webhooks=webhooks,
            fence=self._holds_lease,
        )
        self.url = config.database.url
        self.lease = float(lease if lease is not None else config.scale_out.leader_lease)
        self.advertise_url = advertise_url or os.environ.get("TURNOUT_ADVERTISE_URL") or _default_advertise(config)
        self._store: Store | None = None
        self._publisher: TablePublisher | None = None
        self.follower: StoreFollower | None = None
        self.elector: LeaseElector | None = None
        self._follower_health: HealthModel | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unforward: Callable[[], None] | None = None
        self._follow_task: asyncio.Task[None] | None = None
        self._elect_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.started = False
        self.dropped = 0  # live outcomes that reached this replica while it followed
        self.leading = False  # the leader's services run here (from the end of election to demotion)

    # -- what readers hold (controlplane/seams.py: ControlNode) ----------------------------------
    @property
    def config(self) -> Config:
        return self.plane.config

    @property
    def clock(self) -> Clock:
        return self.plane.clock

    @property
    def metrics(self) -> Metrics:
        return self.plane.metrics

    @property
    def bus(self) -> EventBus:
        return self.plane.bus

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the control replica has not been started")
        return self._store

    @property
    def table_source(self) -> TablePublisher:
        if self._publisher is None:
            raise RuntimeError("the control replica has not been started")
        return self._publisher

    @property
    def health(self) -> HealthDetail | None:
        return self.plane.health if self.leading else self._follower_health

    @property
    def sink(self) -> ObservationSink:
        return self

    @property
    def leadership(self) -> Leadership:
        return self

    # -- what a data plane in the same process reads (`--role all` on PostgreSQL) --------------------
    @property
    def decision_engine(self) -> Engine:
        return self.store.engine

    @property
    def forward_decision(self) -> Callable[[Decision], None] | None:
        return None  # this process has a store: the decision log writes there itself

    def readiness_checks(self) -> Mapping[str, bool]:
        return self.plane.readiness_checks() if self.leading else {"started": self.started}

    def submit(self, obs: Observation) -> None:
        """A live outcome (or a data replica's report): the pipeline's while leading, dropped while following."""
        if self.leading:
            self.plane.sink.submit(obs)
        else:
            self.dropped += 1

    async def drain(
        self,
        *,
        target: str | None = None,
        provider: str | None = None,
        reason: str,
        until: datetime | None = None,
        actor: str,
    ) -> OutcomeLike:
        if not self.leading:
            raise NotLeader("drain", await self._leader_url())
        return await self.plane.drain(target=target, provider=provider, reason=reason, until=until, actor=actor)

    async def undrain(
        self, *, target: str | None = None, provider: str | None = None, actor: str, reason: str = ""
    ) -> OutcomeLike:
        if not self.leading:
            raise NotLeader("undrain", await self._leader_url())
        return await self.plane.undrain(target=target, provider=provider, actor=actor, reason=reason)

    async def reload_config(self, *, actor: str = "system") -> Config:
        return await self.plane.reload_config(actor=actor)  # following: kept for the next election

    # -- what `leadership` answers (the replication API asks it) ---------------------------------
    @property
    def is_leader(self) -> bool:
        """True while the leader's services run here: not merely elected, and not yet stepping down."""
        return self.leading and self._holds_lease()

    def _holds_lease(self) -> bool:
        return bool(self.elector is not None and self.elector.is_leader)

    @property
    def term(self) -> int:
        return int(self.elector.term) if self.elector is not None else 0

    async def current(self) -> LeaderInfo | None:
        """The lease row as the database sees it, or None."""
        return await self.elector.current() if self.elector is not None else None

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        clock = self.plane.clock
        self._loop = asyncio.get_running_loop()
        # Every table module is imported (above), so this one (lock-serialised) migration creates their tables too.
        store = self._store = await asyncio.to_thread(Store, self.url, clock)
        await asyncio.to_thread(install_notify, store.engine)
        # Events written here (webhook tests via a follower's API) still queue their deliveries.
        await asyncio.to_thread(install_outbox, store, clock)
        last = await asyncio.to_thread(newest_table, store.engine, 0)
        publisher = self._publisher = TablePublisher(last or Table(version=0, published_at=clock.wall()))
        self.follower = StoreFollower(
            store.engine,
            publisher,
            conninfo=pg_conninfo(self.url),
            poll_interval=self.config.scale_out.poll_interval,
            on_table=self._on_table,
        )
        self.elector = LeaseElector(
            self.url,
            lease=self.lease,
            advertise_url=self.advertise_url,
            clock=None,
            metrics=self.metrics,
            on_elected=self._elected,
            on_demoted=self._demoted,
        )
        # Blocking reads: off the loop, which must keep renewing a lease.
        self._follower_health = await asyncio.to_thread(self._load_health_view, publisher.current())
        self._become_follower()
        self._elect_task = self._loop.create_task(self.elector.run(), name="turnout-leader-election")
        log.info(
            "control replica %s started as follower at table v%d (lease %.1fs)",
            self.elector.holder,
            publisher.version,
            self.lease,
        )

    async def stop(self) -> None:
        """Resign (the leader's services stop first), stop following, close the store."""
        self._stopping = True
        if self._elect_task is not None:
            self._elect_task.cancel()
            await asyncio.gather(self._elect_task, return_exceptions=True)
            self._elect_task = None
        await self._stop_following()
        self.started = False
        self.metrics.ready.set(0)
        if self._store is not None:
            await asyncio.to_thread(self._store.close)

    # -- roles ------------------------------------------------------------------------------
    def _become_follower(self) -> None:
        assert self.follower is not None
        self.started = True
        self.metrics.ready.set(1)
        if self._stopping or (self._follow_task is not None and not self._follow_task.done()):
            return
        self._follow_task = asyncio.get_running_loop().create_task(self.follower.run(), name="turnout-follower")

    async def _stop_following(self) -> None:
        if self._follow_task is not None:
            self._follow_task.cancel()
            await asyncio.gather(self._follow_task, return_exceptions=True)
            self._follow_task = None

    async def _elected(self, term: int) -> None:
        assert self.elector is not None
        await self._stop_following()
        self.plane.write_fence = LeaseFence(self.elector.holder, term, self.elector.name)
        try:
            await self.plane.start()
        except Exception:
            log.exception("could not start leading (term %d); stepping down to retry", term)
            if self.plane.started:
                await self.plane.stop()
            self.elector.expire_now()  # the next election step demotes us (following resumes) and retries
            self._become_follower()
            return
        leading = self.plane.table_source
        self._forward(leading.current())
        self._unforward = leading.subscribe(self._forward)
        self.leading = True
        log.info("leading (term %d) from table v%d", term, self.table_source.version)

    async def _demoted(self, term: int) -> None:
        self.leading = False
        if self._unforward is not None:
            self._unforward()
            self._unforward = None
        if self.plane.started:
            self._follower_health = self.plane.health  # the last leader's view until the next table arrives
            # Webhooks first: no delivery may leave after we stepped down (stop() ends the dispatcher only after
            # draining the pipeline, which can take a while when the database is slow).
            self.plane.stop_webhooks()
            try:
                await self.plane.stop()
            except Exception:  # keep going: following matters more than a clean teardown
                log.exception("stopping the leader's services failed (term %d)", term)
        self._become_follower()

    async def _leader_url(self) -> str | None:
        info = await self.elector.current() if self.elector is not None else None
        return info.url if info is not None and info.valid else None

    def _forward(self, table: Table) -> None:
        if table.version > self.table_source.version:
            self.table_source.publish(table)

    # -- the follower's read-only views ----------------------------------------------------------
    def _on_table(self, table: Table) -> None:
        """Runs in the follower's worker thread after each new version: reads there, hands over on the loop."""
        view = self._load_health_view(table)
        if view is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._set_health_view, view)

    def _set_health_view(self, view: HealthModel) -> None:
        if not self.leading:  # a late view from before an election must not hide the leader's live model
            self._follower_health = view

    def _load_health_view(self, table: Table) -> HealthModel | None:
        """A read-only health model from the stored snapshot (blocking: call it off the loop)."""
        view: HealthModel | None = None
        try:
            snapshot, _ = self.store.load_health()
            view = HealthModel(self.config, self.clock, snapshot=snapshot, last_table=table if table.version else None)
        except Exception as exc:  # the table is what matters; target detail may lag
            log.debug("follower health view not refreshed: %s", type(exc).__name__)
        if table.version:
            observe_table(self.metrics, table)
        return view


def _default_advertise(cfg: Config) -> str:
    c = cfg.server.control
    host = socket.gethostname() if c.host in ("0.0.0.0", "::", "") else c.host
    return f"http://{host}:{c.port}"


def lifecycle_for(config: Config, *, config_path: str | None = None) -> ControlPlane | ControlReplica:
    """What `turnout serve --role control` runs: a ControlReplica on PostgreSQL, a ControlPlane on SQLite.
    (`--role all` runs a ControlPlane on SQLite and an elected ControlReplica on PostgreSQL: serve_cmd.compose.)"""
    if config.database.url.startswith("sqlite"):
        return ControlPlane(config, config_path=config_path)
    return ControlReplica(config, config_path=config_path)
