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
import importlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from controlplane.errors import TurnoutError
from controlplane.publisher import TablePublisher
from controlplane.rows import PublishedTableRow
from controlplane.table import Table

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
_TABLE_MODULES = ("controlplane.webhooks.rows", "controlplane.decisions")  # other parts' SQLModel tables

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


@dataclass
class _Outcome:
    transitions: list[Any] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    table: Table | None = None


class _FollowerSink:
    """`rt.sink` while following: no pipeline runs here. Operator actions are refused (NotLeader); a reload
    only changes the local config; live outcomes (`--role all` on a follower) are counted and dropped."""

    def __init__(self, leader_url: Callable[[], Awaitable[str | None]]) -> None:
        self._leader_url = leader_url
        self.processed = 0
        self.dropped = 0

    def submit(self, obs: Any) -> None:
        self.dropped += 1

    async def drain(self, **_: Any) -> _Outcome:
        raise NotLeader("drain", await self._leader_url())

    async def undrain(self, **_: Any) -> _Outcome:
        raise NotLeader("undrain", await self._leader_url())

    async def reload(self, config: Any, *, actor: str = "system") -> _Outcome:
        return _Outcome()

    async def flush(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class _IdleScheduler:
    """`rt.scheduler` while following: nothing is probed here."""

    jobs: list[Any] = []

    def set_config(self, config: Any) -> None:
        return None

    async def shutdown(self) -> None:
        return None


class ControlReplica:
    """Runs a `controlplane.runtime.Runtime` as one of several control replicas on one PostgreSQL database.

    Following: `rt.table_source` is fed from the store (NOTIFY, polling fallback); `rt.health` is a read-only
    view rebuilt from the stored snapshot; no probes, pipeline or webhook dispatcher. Elected: `rt.start()`
    builds them from the store (breaker states from the snapshot, versions continuing from the newest stored
    table); their tables are forwarded into the same long-lived publisher, so long-polls never notice the
    switch. Demoted: `rt.stop()` tears them down and following resumes. The store and publisher that the
    API handlers hold stay the same for the process's life.
    """

    def __init__(self, rt: Any, *, advertise_url: str = "", lease: float | None = None) -> None:
        self.rt = rt
        cfg = rt.config
        self.url = cfg.database.url
        self.lease = float(lease if lease is not None else cfg.scale_out.leader_lease)
        self.advertise_url = advertise_url or os.environ.get("TURNOUT_ADVERTISE_URL") or _default_advertise(cfg)
        self.store: Any = None
        self.publisher: TablePublisher | None = None
        self.follower: StoreFollower | None = None
        self.elector: Any = None
        self._leader_store: Any = None
        self._unforward: Callable[[], None] | None = None
        self._follow_task: asyncio.Task[None] | None = None
        self._elect_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.leading = False  # the leader's services run here (from the end of election to demotion)

    # -- what `rt.leadership` answers (the replication API asks it) ---------------------------------
    @property
    def is_leader(self) -> bool:
        """True while the leader's services run here: not merely elected, and not yet stepping down."""
        return self.leading and bool(self.elector is not None and self.elector.is_leader)

    @property
    def term(self) -> int:
        return int(self.elector.term) if self.elector is not None else 0

    async def current(self) -> Any:
        """The lease row as the database sees it (LeaderInfo), or None."""
        return await self.elector.current() if self.elector is not None else None

    async def start(self) -> None:
        from controlplane.scaleout.leader import LeaseElector, pg_conninfo
        from controlplane.store import Store
        from controlplane.webhooks.outbox import install_outbox

        rt = self.rt
        self.store = await asyncio.to_thread(_open_store_serialised, Store, self.url, rt.clock)
        await asyncio.to_thread(install_notify, self.store.engine)
        # Events written here (webhook tests via a follower's API) still queue their deliveries.
        await asyncio.to_thread(install_outbox, self.store, rt.clock)
        last = await asyncio.to_thread(newest_table, self.store.engine, 0)
        self.publisher = TablePublisher(last or Table(version=0, published_at=rt.clock.wall()))
        self.follower = StoreFollower(
            self.store.engine,
            self.publisher,
            conninfo=pg_conninfo(self.url),
            poll_interval=rt.config.scale_out.poll_interval,
            on_table=self._on_table,
        )
        self.elector = LeaseElector(
            self.url,
            lease=self.lease,
            advertise_url=self.advertise_url,
            clock=None,
            metrics=rt.metrics,
            on_elected=self._elected,
            on_demoted=self._demoted,
        )
        rt.leadership = self
        if rt.health is None:  # blocking reads: off the loop, which must keep renewing a lease
            await asyncio.to_thread(self._refresh_health_view, self.publisher.current())
        self._become_follower()
        self._elect_task = asyncio.get_running_loop().create_task(self.elector.run(), name="turnout-leader-election")
        log.info(
            "control replica %s started as follower at table v%d (lease %.1fs)",
            self.elector.holder,
            self.publisher.version,
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
        self.rt.started = False
        self.rt.metrics.ready.set(0)
        if self.store is not None:
            await asyncio.to_thread(self.store.close)

    # -- roles ------------------------------------------------------------------------------
    def _become_follower(self) -> None:
        rt = self.rt
        assert self.publisher is not None and self.follower is not None
        rt.store, rt.table_source = self.store, self.publisher
        rt.sink, rt.scheduler = _FollowerSink(self._leader_url), _IdleScheduler()
        rt.started = True
        rt.metrics.ready.set(1)
        if self._stopping or (self._follow_task is not None and not self._follow_task.done()):
            return
        self._follow_task = asyncio.get_running_loop().create_task(self.follower.run(), name="turnout-follower")

    async def _stop_following(self) -> None:
        if self._follow_task is not None:
            self._follow_task.cancel()
            await asyncio.gather(self._follow_task, return_exceptions=True)
            self._follow_task = None

    async def _elected(self, term: int) -> None:
        rt = self.rt
        assert self.publisher is not None
        await self._stop_following()
        elector = self.elector
        rt.leadership_fence = lambda: bool(elector is not None and elector.is_leader)
        try:
            await rt.start()
        except Exception:
            log.exception("could not start leading (term %d); stepping down to retry", term)
            if rt.started:
                await rt.stop()
            self.elector.expire_now()  # the next election step demotes us (following resumes) and retries
            self._become_follower()
            return
        self._leader_store, rt.store = rt.store, self.store
        leading: TablePublisher = rt.table_source
        self._forward(leading.current())
        self._unforward = leading.subscribe(self._forward)
        rt.table_source = self.publisher
        self.leading = True
        log.info("leading (term %d) from table v%d", term, self.publisher.version)

    async def _demoted(self, term: int) -> None:
        rt = self.rt
        self.leading = False
        if self._unforward is not None:
            self._unforward()
            self._unforward = None
        if self._leader_store is not None:
            rt.store, self._leader_store = self._leader_store, None
            # Webhooks first: no delivery may leave after we stepped down (Runtime.stop() ends the dispatcher
            # only after draining the pipeline, which can take a while when the database is slow).
            dispatcher = getattr(rt, "_dispatcher", None)
            if dispatcher is not None:
                dispatcher.cancel()
            try:
                await rt.stop()
            except Exception:  # keep going: following matters more than a clean teardown
                log.exception("stopping the leader's services failed (term %d)", term)
        self._become_follower()

    async def _leader_url(self) -> str | None:
        info = await self.elector.current() if self.elector is not None else None
        return info.url if info is not None and info.valid else None

    def _forward(self, table: Table) -> None:
        assert self.publisher is not None
        if table.version > self.publisher.version:
            self.publisher.publish(table)

    # -- the follower's read-only views ----------------------------------------------------------
    def _on_table(self, table: Table) -> None:
        """Runs in the follower's worker thread after each new version."""
        self._refresh_health_view(table)

    def _refresh_health_view(self, table: Table) -> None:
        from controlplane.health import HealthModel
        from controlplane.metrics import observe_table

        rt = self.rt
        try:
            snapshot, _ = self.store.load_health()
            rt.health = HealthModel(rt.config, rt.clock, snapshot=snapshot, last_table=table if table.version else None)
        except Exception as exc:  # the table is what matters; target detail may lag
            log.debug("follower health view not refreshed: %s", type(exc).__name__)
        if table.version:
            observe_table(rt.metrics, table)


def _open_store_serialised(store_cls: Any, url: str, clock: Any) -> Any:
    """Open the store with every table module imported first, so its one (lock-serialised) migration
    creates their tables too; Store.create_schema serialises replicas starting together."""
    for module in _TABLE_MODULES:  # their tables join SQLModel.metadata, so this one CREATE covers them too
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            pass
    return store_cls(url, clock)


def _default_advertise(cfg: Any) -> str:
    c = cfg.server.control
    host = socket.gethostname() if c.host in ("0.0.0.0", "::", "") else c.host
    return f"http://{host}:{c.port}"


def lifecycle_for(rt: Any) -> Any:
    """What `turnout serve --role control` starts and stops: a ControlReplica on PostgreSQL, the runtime
    itself on SQLite. (`--role all` is the single-process mode and always runs the runtime itself.)"""
    return ControlReplica(rt) if not rt.config.database.url.startswith("sqlite") else rt
