"""The store: durable observations, rollups, events, the health snapshot and published tables.

SQLite (WAL, synchronous=NORMAL, busy_timeout) by default; the same code runs unchanged on PostgreSQL
(`postgresql+psycopg://…`). Every method is blocking and commits before it returns, so nothing it
acknowledged is lost on `kill -9`; async callers run it in a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, Engine, Result, delete, func, inspect, text
from sqlalchemy import select as sa_select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

import controlplane.decisions  # noqa: F401  (its tables, the client keys' among them, migrate with the rest)
from controlplane.bulk import BulkInsert
from controlplane.clock import Clock
from controlplane.database import brief, migrate, open_engine, schema_version
from controlplane.domain import ErrorClass, Observation, Source
from controlplane.errors import StoreError
from controlplane.events import Event
from controlplane.fencing import LeaseFence
from controlplane.rows import (
    CLASS_COLUMNS,
    OBSERVATION_COLUMNS,
    EventRow,
    HealthRow,
    ObservationRow,
    ProbeSpendRow,
    PublishedTableRow,
    RollupRow,
    empty_rollup,
    observation_of,
    observation_values,
    table_of,
)
from controlplane.table import Table

__all__ = ["Store", "EventHook", "UPTIME_EXCLUDED_KINDS", "KEEP_TABLES"]

log = logging.getLogger("turnout.store")

EventHook = Callable[[Session, list[Event]], None]
# Status-page readings are provider-level hints, not outcomes of calls: they never count toward uptime.
UPTIME_EXCLUDED_KINDS = frozenset({"status_page"})
# Classes that say nothing about the target (the caller's own mistake).
_NEUTRAL = frozenset({ErrorClass.CLIENT_ERROR})
KEEP_TABLES = 50  # published tables kept for history / debugging


def _utc(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _json_safe(value: dict[str, object]) -> dict[str, Any]:
    return json.loads(json.dumps(value, default=str)) if value else {}


class Store:
    """All persistence. `engine` is public: other parts add SQLModel tables and call `create_schema()`."""

    def __init__(self, url: str, clock: Clock, *, create: bool = True) -> None:
        self.url, self.clock = url, clock
        self.is_sqlite = url.startswith("sqlite")
        self.engine: Engine = open_engine(url)
        self._hooks: list[EventHook] = []
        self._before_insert: list[Callable[[Session], None]] = []
        self._obs_bulk: BulkInsert | None = None
        self._rollup_bulk: BulkInsert | None = None
        self._rollup_params: list[tuple[str, Callable[[Any], Any]]] = []
        self._live_ok_second: dict[str, int] = {}  # target -> second of its last raw successful live row
        # Set by an elected control replica (controlplane/fencing.py): health and event writes commit only while
        # this leadership period still holds the lease. None: one process, nothing to fence.
        self.fence: LeaseFence | None = None
        if create:
            self.create_schema()

    # -- schema (controlplane/database.py) -------------------------------------------------------
    def create_schema(self) -> int:
        """Create missing tables, add missing columns (additive migration), record schema_version."""
        return migrate(self.engine)

    def schema_version(self) -> int:
        return schema_version(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- observations -----------------------------------------------------------------------------
    def add_observations(self, observations: Sequence[Observation]) -> int:
        """Store a batch of observations and fold them into the per-minute rollups, in one transaction.

        Every observation is counted in the rollups. Raw rows are kept for every probe result and every failure,
        but for successful live calls at most one per target per second: live traffic brings one per request
        (thousands a second), each request is in the decision log already, and a raw row each would make the
        store the data plane's bottleneck (bench/dataplane). Returns the number of raw rows written."""
        if not observations:
            return 0
        bulk = self._observation_insert()
        rows: list[tuple[Any, ...]] = []
        rollups: dict[tuple[str, int], dict[str, Any]] = {}
        live_ok_second = self._live_ok_second
        for o in observations:
            at = o.at if o.at.tzinfo is UTC else _utc(o.at)  # clock.wall() is UTC already: skip the conversion
            second = int(at.timestamp())
            if o.source is Source.LIVE and o.error_class is ErrorClass.OK:
                if live_ok_second.get(o.target) == second:
                    self._fold(rollups, o, at, second)
                    continue
                live_ok_second[o.target] = second
            rows.append(observation_values(o, bulk.datetime_param(at)))
            self._fold(rollups, o, at, second)
        upsert = self._rollup_insert()
        sums = [tuple(upsert_value(r[c]) for c, upsert_value in self._rollup_params) for r in rollups.values()]
        try:
            with self.engine.begin() as conn:
                bulk.write(conn, rows)
                upsert.write(conn, sums)
        except SQLAlchemyError as exc:
            raise StoreError("add_observations", brief(exc)) from None
        return len(rows)

    @staticmethod
    def _fold(rollups: dict[tuple[str, int], dict[str, Any]], o: Observation, at: datetime, second: int) -> None:
        """Count one observation into its target's per-minute rollup row (runs once per observation: kept lean)."""
        if o.kind in UPTIME_EXCLUDED_KINDS:
            return
        key = (o.target, second // 60)
        r = rollups.get(key)
        if r is None:
            minute = at.replace(second=0, microsecond=0)
            r = rollups[key] = empty_rollup(o.target, o.target.partition("/")[0], minute)
        r[CLASS_COLUMNS[o.error_class]] += 1
        if o.error_class is ErrorClass.OK:
            if o.latency_s is not None:
                r["latency_sum"] += o.latency_s
                r["latency_count"] += 1
            if o.ttft_s is not None:
                r["ttft_sum"] += o.ttft_s
                r["ttft_count"] += 1

    def _observation_insert(self) -> BulkInsert:
        """Live traffic writes an observation per request: a multi-row INSERT (controlplane/bulk.py says why)."""
        if self._obs_bulk is None:
            self._obs_bulk = BulkInsert(ObservationRow.__tablename__, OBSERVATION_COLUMNS, self.engine.dialect)
        return self._obs_bulk

    def _rollup_insert(self) -> BulkInsert:
        """Per-minute rollups, added to in place (one upsert per batch; controlplane/bulk.py says why not the ORM)."""
        if self._rollup_bulk is None:
            summed = [*CLASS_COLUMNS.values(), "latency_sum", "latency_count", "ttft_sum", "ttft_count"]
            columns = ["target", "minute", "provider", *summed]
            self._rollup_bulk = BulkInsert(
                RollupRow.__tablename__,
                columns,
                self.engine.dialect,
                conflict_keys=("target", "minute"),
                add_on_conflict=summed,
            )
            self._rollup_params = [(c, self._rollup_bulk.datetime_param if c == "minute" else _as_is) for c in columns]
        return self._rollup_bulk

    def latest_observations(self, target: str) -> dict[str, Observation]:
        """The newest observation of each kind for one target (kind → observation)."""
        with Session(self.engine) as s:
            ids = (
                sa_select(func.max(ObservationRow.id))
                .where(col(ObservationRow.target) == target)
                .group_by(col(ObservationRow.kind))
            )
            rows = s.exec(select(ObservationRow).where(col(ObservationRow.id).in_(ids))).all()
            return {r.kind: observation_of(r) for r in rows}

    def recent_observations(self, target: str, limit: int = 100, since: datetime | None = None) -> list[Observation]:
        """The newest observations of one target, newest first."""
        q = select(ObservationRow).where(ObservationRow.target == target)
        if since is not None:
            q = q.where(ObservationRow.at >= _utc(since))
        q = q.order_by(col(ObservationRow.id).desc()).limit(limit)
        with Session(self.engine) as s:
            return [observation_of(r) for r in s.exec(q).all()]

    # -- rollups, uptime, retention ---------------------------------------------------------------
    def rollup_and_prune(
        self,
        now: datetime,
        *,
        observation_retention: float,
        rollup_retention: float,
        event_retention: float | None = None,
    ) -> dict[str, int]:
        """Drop raw observations, rollups (and events) past their retention. Rollups are kept current on
        every write, so nothing needs rolling up here; the name says what the periodic job guarantees."""
        now = _utc(now)
        out: dict[str, int] = {}
        try:
            with Session(self.engine) as s:
                r = s.execute(
                    delete(ObservationRow).where(
                        col(ObservationRow.at) < now - timedelta(seconds=observation_retention)
                    )
                )
                out["observations"] = _rowcount(r)
                r = s.execute(
                    delete(RollupRow).where(col(RollupRow.minute) < now - timedelta(seconds=rollup_retention))
                )
                out["rollups"] = _rowcount(r)
                if event_retention is not None:
                    r = s.execute(delete(EventRow).where(col(EventRow.at) < now - timedelta(seconds=event_retention)))
                    out["events"] = _rowcount(r)
                s.commit()
        except SQLAlchemyError as exc:
            raise StoreError("prune", brief(exc)) from None
        return out

    def uptime(
        self, window_s: float, target: str | None = None, provider: str | None = None, *, slo: float = 0.995
    ) -> list[dict[str, Any]]:
        """Per target over the last `window_s`: uptime % (ok / (ok + failures); client errors and status-page
        hints excluded), counts by class, mean latency, and the share of the error budget (1 - slo) used."""
        since = _utc(self.clock.wall()) - timedelta(seconds=window_s)
        t = table_of(RollupRow)
        sums = [func.sum(t.c[c]).label(c) for c in (*CLASS_COLUMNS.values(), "latency_sum", "latency_count")]
        q = sa_select(t.c.target, t.c.provider, *sums).where(t.c.minute >= since.replace(second=0, microsecond=0))
        if target is not None:
            q = q.where(t.c.target == target)
        if provider is not None:
            q = q.where(t.c.provider == provider)
        q = q.group_by(t.c.target, t.c.provider).order_by(t.c.target)
        out: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for row in conn.execute(q).mappings():
                by_class = {str(ec): int(row[col] or 0) for ec, col in CLASS_COLUMNS.items() if row[col]}
                ok = by_class.get("ok", 0)
                failed = sum(n for ec, n in by_class.items() if ec != "ok" and ErrorClass(ec) not in _NEUTRAL)
                counted = ok + failed
                up = 100.0 * ok / counted if counted else None
                budget = None if up is None else (1 - up / 100) / (1 - slo) if slo < 1 else None
                lat_n = int(row["latency_count"] or 0)
                out.append(
                    {
                        "target": row["target"],
                        "provider": row["provider"],
                        "window_s": window_s,
                        "total": sum(by_class.values()),
                        "ok": ok,
                        "failed": failed,
                        "by_class": by_class,
                        "uptime_pct": None if up is None else round(up, 4),
                        "error_budget_used": None if budget is None else round(budget, 4),
                        "slo": slo,
                        "latency_mean_s": (float(row["latency_sum"]) / lat_n) if lat_n else None,
                    }
                )
        return out

    # -- events -----------------------------------------------------------------------------------
    def add_event_hook(self, fn: EventHook, *, before_insert: Callable[[Session], None] | None = None) -> None:
        """`fn(session, stored_events)` runs inside append_events' transaction (e.g. the webhook outbox);
        `before_insert(session)`, in the same transaction before the events get their ids (e.g. a lock that
        must order whole appends, id allocation included)."""
        self._hooks.append(fn)
        if before_insert is not None:
            self._before_insert.append(before_insert)

    def append_events(self, events: Iterable[Event]) -> list[Event]:
        """Store events (ids assigned, monotonic), run every hook in the same transaction, commit."""
        evs = list(events)
        if not evs:
            return []
        try:
            with Session(self.engine) as s:
                if self.fence is not None:
                    self.fence.check(s, "append_events")
                for before in self._before_insert:
                    before(s)
                rows = [
                    EventRow(
                        type=e.type,
                        at=_utc(e.at),
                        subject=e.subject,
                        data=_json_safe(e.data),
                        config_hash=e.config_hash,
                    )
                    for e in evs
                ]
                s.add_all(rows)
                s.flush()
                stored = [replace(e, id=int(r.id or 0)) for e, r in zip(evs, rows, strict=True)]
                for hook in self._hooks:
                    hook(s, stored)
                s.commit()
        except SQLAlchemyError as exc:
            raise StoreError("append_events", brief(exc)) from None
        return stored

    def list_events(
        self, after: int | None = None, types: list[str] | None = None, limit: int = 100, subject: str | None = None
    ) -> list[Event]:
        """Events in id order. `after` given: those with id > after (oldest first, for paging forward);
        `after` None: the newest `limit` events, still in ascending id order."""
        q = select(EventRow)
        if types:
            q = q.where(col(EventRow.type).in_(types))
        if subject is not None:
            q = q.where(EventRow.subject == subject)
        if after is not None:
            q = q.where(col(EventRow.id) > after).order_by(col(EventRow.id).asc()).limit(limit)
        else:
            q = q.order_by(col(EventRow.id).desc()).limit(limit)
        with Session(self.engine) as s:
            rows = list(s.exec(q).all())
        rows.sort(key=lambda r: r.id or 0)
        return [
            Event(type=r.type, at=_utc(r.at), subject=r.subject, data=dict(r.data), config_hash=r.config_hash, id=r.id)
            for r in rows
        ]

    # -- health snapshot and tables ---------------------------------------------------------------
    def save_health(self, snapshot: dict[str, Any], table: Table | None) -> None:
        """Persist the health snapshot and (when given) a newly published table in one transaction."""
        try:
            with Session(self.engine) as s:
                if self.fence is not None:
                    self.fence.check(s, "save_health")
                row = s.get(HealthRow, 1) or HealthRow(id=1, saved_at=self.clock.wall())
                row.saved_at = _utc(self.clock.wall())
                row.snapshot = _json_safe(snapshot)
                if table is not None:
                    row.table_version = max(row.table_version, table.version)
                    if s.get(PublishedTableRow, table.version) is None:
                        s.add(
                            PublishedTableRow(
                                version=table.version, published_at=_utc(table.published_at), data=table.to_dict()
                            )
                        )
                    s.execute(
                        delete(PublishedTableRow).where(col(PublishedTableRow.version) <= table.version - KEEP_TABLES)
                    )
                s.add(row)
                s.commit()
        except SQLAlchemyError as exc:
            raise StoreError("save_health", brief(exc)) from None

    def load_health(self) -> tuple[dict[str, Any] | None, Table | None]:
        """The last saved snapshot and the newest published table (None, None on a fresh database)."""
        with Session(self.engine) as s:
            row = s.get(HealthRow, 1)
            trow = s.exec(select(PublishedTableRow).order_by(col(PublishedTableRow.version).desc()).limit(1)).first()
            snapshot = dict(row.snapshot) if row else None
            table = Table.from_dict(trow.data) if trow else None
        return snapshot, table

    def table_history(self, limit: int = 10) -> list[Table]:
        with Session(self.engine) as s:
            rows = s.exec(select(PublishedTableRow).order_by(col(PublishedTableRow.version).desc()).limit(limit)).all()
            return [Table.from_dict(r.data) for r in rows]

    # -- paid-probe spend (probes/budget.py: SpendLedger) -------------------------------------------
    def load_spend(self, day: date) -> dict[str, float]:
        """USD spent per provider on `day` by paid probes, as last saved."""
        with Session(self.engine) as s:
            rows = s.exec(select(ProbeSpendRow).where(ProbeSpendRow.day == day.isoformat())).all()
            return {r.provider: float(r.spent_usd) for r in rows}

    def save_spend(self, day: date, spent: Mapping[str, float]) -> None:
        """Record `day`'s spend per provider (one transaction); days older than a month are dropped."""
        try:
            with Session(self.engine) as s:
                now = _utc(self.clock.wall())
                for provider, usd in spent.items():
                    row = s.get(ProbeSpendRow, (day.isoformat(), provider)) or ProbeSpendRow(
                        day=day.isoformat(), provider=provider, updated_at=now
                    )
                    row.spent_usd, row.updated_at = float(usd), now
                    s.add(row)
                s.execute(delete(ProbeSpendRow).where(col(ProbeSpendRow.day) < (day - timedelta(days=31)).isoformat()))
                s.commit()
        except SQLAlchemyError as exc:
            raise StoreError("save_spend", brief(exc)) from None

    # -- inspection -------------------------------------------------------------------------------
    def table_counts(self) -> dict[str, int]:
        """Row count of every table in the database (for `turnout db info`)."""
        insp = inspect(self.engine)
        out: dict[str, int] = {}
        with self.engine.connect() as conn:
            for name in sorted(insp.get_table_names()):
                out[name] = int(conn.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar() or 0)
        return out

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False


def _as_is(value: Any) -> Any:
    return value


def _rowcount(r: Result[Any]) -> int:
    """Rows a DELETE touched (a DML statement's result is a CursorResult; the session types it as Result)."""
    return (r.rowcount or 0) if isinstance(r, CursorResult) else 0
