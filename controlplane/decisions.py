"""The decision log: one record per data-plane request (never the prompt or the completion), and its usage summary.

Each request leaves who asked (route, caller tag), where it went (target, every attempt with its error
class), what it cost (tokens, estimated USD from the configured prices) and how long it took (latency,
TTFT). Records are buffered in memory and written in batches by a background task, off the hot path;
old rows are pruned after `dataplane.decision_log_retention`. `summarise()` is the usage query that
`GET /api/v1/usage` (controlplane/api/usage.py) answers with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import BigInteger, Column, DateTime, Engine, Integer, String, Text, case, delete, func, select
from sqlmodel import Field, Session, SQLModel

from controlplane.bulk import BulkInsert
from controlplane.clock import Clock
from controlplane.rows import table_of

__all__ = ["DecisionRow", "Decision", "DecisionLog", "summarise", "ensure_decision_table", "USAGE_GROUPS", "cost_usd"]

log = logging.getLogger(__name__)

USAGE_GROUPS = ("route", "target", "tag")
_SCHEMA_READY: set[int] = set()  # engines whose decision table is known to exist


class DecisionRow(SQLModel, table=True):
    """One data-plane request as stored. `attempts` is compact JSON: [[target, error_class, status], …]."""

    __tablename__ = "dataplane_decisions"

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), index=True, nullable=False))
    route: str = Field(sa_column=Column(String(300), index=True, nullable=False))
    tag: str | None = Field(default=None, sa_column=Column(String(128), index=True, nullable=True))
    target: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    outcome: str = Field(max_length=32)  # ok | exhausted | client_error | stream_error | client_gone
    status: int = 200
    stream: bool = False
    n_attempts: int = 0
    attempts: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_s: float | None = None
    ttft_s: float | None = None
    table_version: int = 0


@dataclass(slots=True)
class Decision:
    """The in-memory record the proxy hands over; cheap to build on the hot path."""

    at: datetime
    route: str
    target: str | None
    outcome: str
    status: int
    stream: bool
    attempts: list[tuple[str, str, int | None]]
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_s: float | None = None
    ttft_s: float | None = None
    tag: str | None = None
    table_version: int = 0

    def values(self) -> tuple[Any, ...]:
        """The row's values in `_COLUMNS` order."""
        return (
            self.at,
            self.route,
            self.tag,
            self.target,
            self.outcome,
            self.status,
            self.stream,
            len(self.attempts),
            orjson.dumps(self.attempts).decode(),
            self.tokens_in,
            self.tokens_out,
            self.cost_usd,
            self.latency_s,
            self.ttft_s,
            self.table_version,
        )


_COLUMNS = (
    "at",
    "route",
    "tag",
    "target",
    "outcome",
    "status",
    "stream",
    "n_attempts",
    "attempts",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "latency_s",
    "ttft_s",
    "table_version",
)


def cost_usd(tokens_in: int, tokens_out: int, price_in: float, price_out: float) -> float:
    """Estimated spend from prices in USD per million tokens."""
    return (tokens_in * price_in + tokens_out * price_out) / 1_000_000


class DecisionLog:
    """Buffers decisions and writes them in batches from a background task; prunes past the retention."""

    def __init__(
        self,
        engine: Engine | None,
        clock: Clock,
        *,
        retention_s: float,
        batch: int = 500,
        flush_interval_s: float = 1.0,
        max_buffer: int = 100_000,
        forward: Callable[[Decision], None] | None = None,
    ) -> None:
        self._engine, self._clock, self._retention = engine, clock, retention_s
        self._forward = forward  # no store here (a data replica): hand each record to whoever ships it
        self._batch, self._interval, self._max = batch, flush_interval_s, max_buffer
        # Rows ready for the driver, converted on the hot path (cheap): the writer thread then only runs the
        # multi-row INSERTs (controlplane/bulk.py), so a flush barely holds the GIL the event loop needs.
        self._buf: list[tuple[Any, ...]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_prune: float | None = None
        self._failing = False  # a write failed and nothing has succeeded since (logged once per outage)
        self.dropped = 0
        self.written = 0
        self._bulk = BulkInsert(DecisionRow.__tablename__, _COLUMNS, engine.dialect) if engine is not None else None

    def record(self, d: Decision) -> None:
        """Queue one decision; never blocks. A full buffer (store down for long) drops the newest."""
        if self._engine is None:
            if self._forward is not None:
                self._forward(d)
            return  # no store and nobody to forward to: nothing would ever drain the buffer
        if len(self._buf) >= self._max:
            self.dropped += 1
            return
        assert self._bulk is not None
        values = d.values()  # converted here, cheaply, so the writer thread only steps the statement
        self._buf.append((self._bulk.datetime_param(values[0]), *values[1:]) if self._bulk.sqlite else values)
        if len(self._buf) >= self._batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def ensure_schema(self) -> None:
        if self._engine is not None:
            SQLModel.metadata.create_all(self._engine, tables=[table_of(DecisionRow)])

    async def start(self) -> None:
        if self._engine is None or self._task is not None:
            return
        await asyncio.to_thread(self.ensure_schema)
        self._task = asyncio.create_task(self._run(), name="turnout-decision-log")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                now = self._clock.monotonic()
                if self._last_prune is None or now - self._last_prune > 3600:
                    self._last_prune = now
                    await asyncio.to_thread(self.prune, self._clock.wall())
                if self._failing:
                    self._failing = False
                    log.warning("decision log writes succeed again")
            except Exception as exc:  # the store being down must never stop the data plane; rows wait in the buffer
                # One line per outage (a full disk fails every flush), without SQL parameters or a traceback.
                if not self._failing:
                    self._failing = True
                    cause = getattr(exc, "orig", None) or exc
                    log.warning(
                        "decision log write failed (%s: %s); %d records buffered, retrying quietly",
                        type(cause).__name__,
                        str(cause).splitlines()[0][:200] if str(cause) else "",
                        len(self._buf),
                    )

    async def flush(self) -> int:
        """Write everything buffered now (in a thread: SQLAlchemy is blocking)."""
        if self._engine is None:
            self._buf.clear()  # no store (a data-only replica without one): nothing to keep them for
            return 0
        if not self._buf:
            return 0
        batch, self._buf = self._buf, []
        try:
            await asyncio.to_thread(self._write, batch)
        except Exception:
            self._buf = batch[: self._max - len(self._buf)] + self._buf  # keep them for the next try
            raise
        self.written += len(batch)
        return len(batch)

    def _write(self, batch: list[tuple[Any, ...]]) -> None:
        assert self._engine is not None and self._bulk is not None
        with self._engine.begin() as conn:
            self._bulk.write(conn, batch)

    def prune(self, now: datetime) -> int:
        """Delete rows older than the retention; returns how many."""
        if self._engine is None:
            return 0
        cutoff = now - timedelta(seconds=self._retention)
        with self._engine.begin() as conn:
            res = conn.execute(delete(table_of(DecisionRow)).where(table_of(DecisionRow).c.at < cutoff))
            return int(res.rowcount or 0)


def summarise(engine: Engine, by: str, since: datetime) -> list[dict[str, Any]]:
    """Usage grouped by route, target or tag since `since`: requests, errors, failovers, tokens, cost, latency."""
    if by not in USAGE_GROUPS:
        raise ValueError(f"by must be one of {', '.join(USAGE_GROUPS)}")
    t = table_of(DecisionRow).c  # Core columns: typed SQL expressions
    col = t[by]
    stmt = (
        select(
            col.label("key"),
            func.count().label("requests"),
            func.sum(case((t.outcome == "ok", 1), else_=0)).label("ok"),
            func.sum(t.n_attempts).label("attempts"),
            func.sum(case((t.n_attempts > 1, 1), else_=0)).label("failed_over"),
            func.sum(t.tokens_in).label("tokens_in"),
            func.sum(t.tokens_out).label("tokens_out"),
            func.sum(t.cost_usd).label("cost_usd"),
            func.avg(t.latency_s).label("latency_avg_s"),
            func.avg(t.ttft_s).label("ttft_avg_s"),
        )
        .where(t.at >= since)
        .group_by(col)
        .order_by(func.sum(t.cost_usd).desc(), col)
    )
    with Session(engine) as s:
        rows = s.execute(stmt).all()
    out: list[dict[str, Any]] = []
    for r in rows:
        requests = int(r.requests)
        out.append(
            {
                by: r.key,
                "requests": requests,
                "errors": requests - int(r.ok or 0),
                "attempts": int(r.attempts or 0),
                "failed_over": int(r.failed_over or 0),  # requests that needed more than one attempt
                "tokens_in": int(r.tokens_in or 0),
                "tokens_out": int(r.tokens_out or 0),
                "cost_usd": round(float(r.cost_usd or 0.0), 6),
                "latency_avg_s": None if r.latency_avg_s is None else round(float(r.latency_avg_s), 4),
                "ttft_avg_s": None if r.ttft_avg_s is None else round(float(r.ttft_avg_s), 4),
            }
        )
    return out


def ensure_decision_table(engine: Engine) -> None:
    """Create the decision table if it is missing (blocking; once per engine per process)."""
    if id(engine) in _SCHEMA_READY:
        return
    SQLModel.metadata.create_all(engine, [table_of(DecisionRow)])
    _SCHEMA_READY.add(id(engine))
