"""Leader election for scale-out: exactly one control replica at a time runs probes, breakers and webhooks.

On PostgreSQL the leader holds a lease row (`turnout_leader`) on a dedicated connection. Every write uses the
database's clock (`now()`), so replica clocks never have to agree:

- acquire: take the row when its lease has expired (or is already ours); each acquisition bumps `term`, the
  fencing token that names one leadership period;
- renew: every `lease / 3` seconds, extend the lease, only while `(holder, term)` still match;
- step down locally once `lease * SAFETY` has passed since the start of the last successful renewal, even
  when the database cannot be reached; the database lets a follower in only after the full lease, so two
  leaders never act at once (barring clocks that drift apart by more than 1 - SAFETY of a lease);
- resign on a clean stop: the lease ends at once and a follower takes over at its next attempt.

A killed leader (`kill -9`) stops renewing; a follower leads within `lease + lease / 3` seconds.
On SQLite there is one process: `SingleLeader` always leads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from controlplane.clock import Clock, SystemClock
from controlplane.fencing import LEASE_TABLE
from controlplane.metrics import Metrics

__all__ = [
    "Leadership",
    "LeaderInfo",
    "SingleLeader",
    "LeaseElector",
    "SAFETY",
    "pg_conninfo",
    "new_holder_id",
    "elector_for",
]

log = logging.getLogger("turnout.leader")

SAFETY = 0.75  # share of the lease a leader trusts its last renewal for
_LEASE_TABLE = LEASE_TABLE  # controlplane/fencing.py checks the same row in every leader write
_SCHEMA_LOCK = 0x7475726E  # "turn": serialises CREATE TABLE between replicas starting together

TransitionFn = Callable[[int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LeaderInfo:
    """Who leads now, as the database sees it (for /readyz, followers' answers and `turnout status`)."""

    holder: str
    term: int
    url: str
    valid: bool  # the lease has not expired
    expires_in_s: float


class Leadership(Protocol):
    """What the runtime needs from an elector."""

    @property
    def is_leader(self) -> bool: ...

    @property
    def term(self) -> int: ...

    async def run(self) -> None: ...

    async def resign(self) -> None: ...

    async def current(self) -> LeaderInfo | None: ...


def new_holder_id() -> str:
    """Unique per process lifetime: a restarted replica is a new candidate, never the old leader resumed."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def pg_conninfo(url: str) -> str:
    """A libpq conninfo string for a SQLAlchemy URL (`postgresql+psycopg://user:pw@host:port/db?opts`)."""
    from psycopg.conninfo import make_conninfo
    from sqlalchemy.engine import make_url

    u = make_url(url)
    params: dict[str, Any] = {k: v for k, v in u.query.items() if isinstance(v, str)}
    for key, value in (
        ("host", u.host),
        ("port", u.port),
        ("user", u.username),
        ("password", u.password),
        ("dbname", u.database),
    ):
        if value is not None:
            params[key] = str(value)
    params.setdefault("connect_timeout", "5")
    # A half-open connection must not hold anything for long: the server notices a dead peer in ~10 s.
    params.setdefault("keepalives_idle", "5")
    params.setdefault("keepalives_interval", "2")
    params.setdefault("keepalives_count", "3")
    params.setdefault("application_name", "turnout")
    return make_conninfo(**params)


class SingleLeader:
    """SQLite: the single process is always the leader (term 1)."""

    def __init__(self, on_elected: TransitionFn | None = None) -> None:
        self._on_elected = on_elected
        self._started = False

    @property
    def is_leader(self) -> bool:
        return True

    @property
    def term(self) -> int:
        return 1

    async def run(self) -> None:
        if not self._started and self._on_elected is not None:
            self._started = True
            await self._on_elected(1)
        await asyncio.Event().wait()  # nothing to renew; runs until cancelled

    async def resign(self) -> None:
        return None

    async def current(self) -> LeaderInfo | None:
        return LeaderInfo(holder="single", term=1, url="", valid=True, expires_in_s=float("inf"))


class LeaseElector:
    """The lease-row elector on PostgreSQL. `step()` is one attempt (tests call it with a FakeClock);
    `run()` repeats it every `lease / 3` seconds until cancelled. Transition callbacks run one after the
    other in a task of their own, so a slow start of the leader's services never delays a renewal;
    `settle()` waits for the ones queued so far."""

    def __init__(
        self,
        url: str,
        *,
        lease: float,
        holder: str | None = None,
        advertise_url: str = "",
        name: str = "control",
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        on_elected: TransitionFn | None = None,
        on_demoted: TransitionFn | None = None,
    ) -> None:
        if lease <= 0:
            raise ValueError(f"scale_out.leader_lease must be > 0, got {lease!r}")
        self.conninfo = pg_conninfo(url)
        self.lease = float(lease)
        self.holder = holder or new_holder_id()
        self.advertise_url = advertise_url
        self.name = name
        self.clock: Clock = clock or SystemClock()
        self.metrics = metrics
        self.on_elected, self.on_demoted = on_elected, on_demoted
        self._conn: Any = None  # psycopg.AsyncConnection, opened lazily and reopened after a failure
        self._term = 0
        self._leader = False
        self._valid_until = 0.0  # clock.monotonic() after which we no longer trust our lease
        self._callbacks: asyncio.Task[None] | None = None  # the chain of transition callbacks
        self._db_ok = True
        self.elections = 0

    # -- state ------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def term(self) -> int:
        """The fencing token of our current (or last) leadership; 0 before the first one."""
        return self._term

    @property
    def interval(self) -> float:
        return self.lease / 3.0

    # -- database ---------------------------------------------------------------------------
    async def _connection(self) -> Any:
        import psycopg

        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        await self._ensure_schema(self._conn)
        return self._conn

    @staticmethod
    async def _ensure_schema(conn: Any) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_LEASE_TABLE} (name TEXT PRIMARY KEY, holder TEXT NOT NULL, "
                "term BIGINT NOT NULL, url TEXT NOT NULL DEFAULT '', expires_at TIMESTAMPTZ NOT NULL, "
                "acquired_at TIMESTAMPTZ NOT NULL)"
            )

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # already broken: closing is best effort
                pass

    async def _query(self, sql: str, params: tuple[Any, ...], timeout: float) -> list[tuple[Any, ...]]:
        """Run one statement within `timeout` seconds; any failure drops the connection and raises."""
        try:
            async with asyncio.timeout(max(timeout, 0.05)):
                conn = await self._connection()
                cur = await conn.execute(sql, params)
                return list(await cur.fetchall()) if cur.description else []
        except BaseException:
            await self._drop_connection()
            raise

    async def _try_acquire(self, timeout: float) -> int | None:
        rows = await self._query(
            f"INSERT INTO {_LEASE_TABLE} AS l (name, holder, term, url, expires_at, acquired_at) "
            "VALUES (%s, %s, 1, %s, now() + make_interval(secs => %s), now()) "
            "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, term = l.term + 1, url = EXCLUDED.url, "
            "expires_at = EXCLUDED.expires_at, acquired_at = now() "
            "WHERE l.expires_at < now() OR l.holder = EXCLUDED.holder RETURNING term",
            (self.name, self.holder, self.advertise_url, self.lease),
            timeout,
        )
        return int(rows[0][0]) if rows else None

    async def _try_renew(self, timeout: float) -> bool:
        rows = await self._query(
            f"UPDATE {_LEASE_TABLE} SET expires_at = now() + make_interval(secs => %s) "
            "WHERE name = %s AND holder = %s AND term = %s RETURNING term",
            (self.lease, self.name, self.holder, self._term),
            timeout,
        )
        return bool(rows)

    async def current(self) -> LeaderInfo | None:
        """The lease row as the database sees it; None when there is none or the database is unreachable."""
        try:
            rows = await self._query(
                f"SELECT holder, term, url, expires_at > now(), EXTRACT(EPOCH FROM expires_at - now()) "
                f"FROM {_LEASE_TABLE} WHERE name = %s",
                (self.name,),
                self.interval,
            )
        except Exception as exc:  # reported as "unknown", never raised into an API handler
            log.debug("leader lookup failed: %s", type(exc).__name__)
            return None
        if not rows:
            return None
        holder, term, url, valid, left = rows[0]
        return LeaderInfo(str(holder), int(term), str(url), bool(valid), float(left))

    # -- transitions ------------------------------------------------------------------------
    async def _become_leader(self, term: int, started: float) -> None:
        self._term, self._leader = term, True
        self._valid_until = started + self.lease * SAFETY
        self.elections += 1
        if self.metrics is not None:
            self.metrics.leader.set(1)
        log.info("elected leader (term %d, lease %.1fs)", term, self.lease)
        self._queue(self.on_elected, term)

    async def _step_down(self, why: str) -> None:
        if not self._leader:
            return
        self._leader = False
        if self.metrics is not None:
            self.metrics.leader.set(0)
        log.warning("stepping down as leader (term %d): %s", self._term, why)
        self._queue(self.on_demoted, self._term)

    def _queue(self, fn: TransitionFn | None, term: int) -> None:
        if fn is None:
            return
        prev = self._callbacks

        async def chained() -> None:
            if prev is not None:
                await asyncio.gather(prev, return_exceptions=True)
            try:
                await fn(term)
            except Exception:  # a failed start/stop is logged; the election itself carries on
                log.exception("leader transition callback %r failed (term %d)", fn, term)

        self._callbacks = asyncio.get_running_loop().create_task(chained(), name="turnout-leader-transition")

    def expire_now(self) -> None:
        """Distrust our lease from now on: the next step steps down (and may try again for a new term)."""
        self._valid_until = 0.0

    async def settle(self) -> None:
        """Wait until every transition callback queued so far has finished."""
        while self._callbacks is not None and not self._callbacks.done():
            await asyncio.gather(self._callbacks, return_exceptions=True)

    async def step(self) -> bool:
        """One election round: renew our lease, or try to take an expired one. Returns whether we lead."""
        started = self.clock.monotonic()
        if self._leader:
            budget = self._valid_until - started
            if budget <= 0:
                await self._step_down("lease not renewed in time")
            else:
                try:
                    renewed = await self._try_renew(budget)
                except Exception as exc:
                    if self.clock.monotonic() >= self._valid_until:
                        await self._step_down(
                            f"lease expired while the database was unreachable ({type(exc).__name__})"
                        )
                    else:
                        log.warning(
                            "lease renewal failed (%s); %.1fs of lease left",
                            type(exc).__name__,
                            self._valid_until - self.clock.monotonic(),
                        )
                    return self._leader
                if renewed:
                    self._valid_until = started + self.lease * SAFETY
                    return True
                await self._step_down("another replica holds the lease")
        try:
            term = await self._try_acquire(self.interval)
        except Exception as exc:
            if self._db_ok:  # one line per outage, not one per attempt
                log.warning(
                    "leader election: database unreachable (%s); retrying every %.1fs",
                    type(exc).__name__,
                    self.interval,
                )
            self._db_ok = False
            return False
        if not self._db_ok:
            log.info("leader election: database reachable again")
        self._db_ok = True
        if term is not None:
            await self._become_leader(term, started)
        return self._leader

    async def run(self) -> None:
        """Elect, renew and step down until cancelled; resigns on the way out."""
        try:
            while True:
                await self.step()
                wait = self.interval
                if self._leader:  # wake before the local deadline so a slow renewal cannot outlive it
                    wait = min(wait, max(self._valid_until - self.clock.monotonic(), 0.0))
                await asyncio.sleep(wait)
        finally:
            await asyncio.shield(self.resign())

    async def resign(self) -> None:
        """Give up leadership now (clean shutdown): callbacks first, then end the lease for the next leader."""
        was_leader, term = self._leader, self._term
        await self._step_down("resigning")
        await self.settle()  # the leader's services are stopped before the next leader may start
        if was_leader:
            try:
                await self._query(
                    f"UPDATE {_LEASE_TABLE} SET expires_at = now() - interval '1 second' "
                    "WHERE name = %s AND holder = %s AND term = %s",
                    (self.name, self.holder, term),
                    self.interval,
                )
            except Exception as exc:  # the lease then simply runs out
                log.warning("could not release the lease (%s); it expires in %.1fs", type(exc).__name__, self.lease)
        await self._drop_connection()


def elector_for(
    database_url: str,
    *,
    lease: float,
    advertise_url: str = "",
    clock: Clock | None = None,
    metrics: Metrics | None = None,
    on_elected: TransitionFn | None = None,
    on_demoted: TransitionFn | None = None,
) -> LeaseElector | SingleLeader:
    """A LeaseElector on PostgreSQL, a SingleLeader on SQLite."""
    if database_url.startswith("sqlite"):
        if metrics is not None:
            metrics.leader.set(1)
        return SingleLeader(on_elected)
    return LeaseElector(
        database_url,
        lease=lease,
        advertise_url=advertise_url,
        clock=clock,
        metrics=metrics,
        on_elected=on_elected,
        on_demoted=on_demoted,
    )
