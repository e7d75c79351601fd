"""Followers: a control replica that does not lead learns each new table version from the store.

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
from collections.abc import Callable

from sqlalchemy import Engine, text
from sqlmodel import Session, select

from controlplane.models import PublishedTableRow
from controlplane.publisher import TablePublisher
from controlplane.table import Table

__all__ = ["TABLE_CHANNEL", "install_notify", "newest_table", "StoreFollower"]

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
            select(PublishedTableRow).where(PublishedTableRow.version > after)  # type: ignore[arg-type, operator]
            .order_by(PublishedTableRow.version.desc()).limit(1)  # type: ignore[attr-defined]
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
                    log.warning("follower: LISTEN %s failed (%s); polling every %.1fs", TABLE_CHANNEL, type(exc).__name__,
                                self.poll_interval)
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
