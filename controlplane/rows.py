"""The store's tables (SQLModel): raw observations, per-minute rollups, events, health snapshot, tables; and how
an Observation maps onto a raw row and back.

Every table lives in `SQLModel.metadata`, so other parts add their own tables beside these and call
`Store.create_schema()` after importing them. Timestamps are stored as UTC; columns only ever get added
(additive migrations), never renamed or dropped, so an older binary can still read a newer database.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Integer, String, Table
from sqlmodel import Field, SQLModel

from controlplane.domain import ErrorClass, Observation, Scope, Source

__all__ = [
    "SCHEMA_VERSION",
    "CLASS_COLUMNS",
    "MetaRow",
    "ObservationRow",
    "RollupRow",
    "EventRow",
    "HealthRow",
    "PublishedTableRow",
    "ProbeSpendRow",
    "table_of",
    "OBSERVATION_COLUMNS",
    "observation_values",
    "observation_of",
    "empty_rollup",
]

# Bumped whenever a column or table is added; recorded in the `turnout_meta` row `schema_version`.
SCHEMA_VERSION = 1

# One counter column per error class in the rollups, e.g. `n_server_error` (atomic `col = col + n` upserts).
CLASS_COLUMNS: dict[ErrorClass, str] = {ec: f"n_{ec.value}" for ec in ErrorClass}


def table_of(row: type[SQLModel]) -> Table:
    """The Core table behind a `table=True` model, typed (SQLModel sets `__table__` but does not declare it).

    Core statements (bulk `update(...)` with bind parameters, `insert ... on conflict`) take the table."""
    name = row.__tablename__
    assert isinstance(name, str), row
    return row.metadata.tables[name]


def _utc_col(index: bool = False, nullable: bool = False) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), index=index, nullable=nullable))


class MetaRow(SQLModel, table=True):
    """Key/value facts about the database itself (schema_version)."""

    __tablename__ = "turnout_meta"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(default="")


class ObservationRow(SQLModel, table=True):
    """One raw observation (kept `database.observation_retention`)."""

    __tablename__ = "observations"
    # ids are never reused after pruning (SQLite), so "newest" stays unambiguous
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    target: str = Field(sa_column=Column(String(300), index=True, nullable=False))
    provider: str = Field(max_length=100)
    at: datetime = _utc_col(index=True)
    source: str = Field(max_length=16)
    kind: str = Field(max_length=32)
    error_class: str = Field(max_length=32)
    latency_s: float | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    status: int | None = None
    headroom: float | None = None
    retry_after_s: float | None = None
    scope: str = Field(default="target", max_length=16)
    code: str | None = Field(default=None, max_length=200)
    detail: str = Field(default="")
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class RollupRow(SQLModel, table=True):
    """Per-minute, per-target counts by error class and latency sums (kept `database.rollup_retention`)."""

    __tablename__ = "observation_rollups"

    target: str = Field(sa_column=Column(String(300), primary_key=True))
    minute: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    provider: str = Field(default="", max_length=100, index=True)
    n_ok: int = 0
    n_timeout: int = 0
    n_connect: int = 0
    n_rate_limited: int = 0
    n_quota_exhausted: int = 0
    n_overloaded: int = 0
    n_server_error: int = 0
    n_auth: int = 0
    n_region_blocked: int = 0
    n_model_gone: int = 0
    n_client_error: int = 0
    n_bad_response: int = 0
    latency_sum: float = 0.0
    latency_count: int = 0
    ttft_sum: float = 0.0
    ttft_count: int = 0


class EventRow(SQLModel, table=True):
    """One event; `id` is the monotonic event id the API and webhooks expose."""

    __tablename__ = "events"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    type: str = Field(sa_column=Column(String(64), index=True, nullable=False))
    at: datetime = _utc_col(index=True)
    subject: str = Field(max_length=300)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    config_hash: str = Field(default="", max_length=64)


class HealthRow(SQLModel, table=True):
    """The health model's snapshot (breaker states, counters, overrides): exactly one row, id 1."""

    __tablename__ = "health_snapshot"

    id: int = Field(default=1, primary_key=True)
    saved_at: datetime = _utc_col()
    table_version: int = 0
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class PublishedTableRow(SQLModel, table=True):
    """A published availability table (the last few are kept; the newest is reloaded at start)."""

    __tablename__ = "published_tables"

    version: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    published_at: datetime = _utc_col()
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# -- observations onto rows and back (the store's bulk writes name these columns in this order) ---------------
OBSERVATION_COLUMNS = (
    "target",
    "provider",
    "at",
    "source",
    "kind",
    "error_class",
    "latency_s",
    "ttft_s",
    "tokens_per_s",
    "status",
    "headroom",
    "retry_after_s",
    "scope",
    "code",
    "detail",
    "extra",
)


def observation_values(o: Observation, at: object) -> tuple[Any, ...]:
    """One raw row, in OBSERVATION_COLUMNS order; `at` is the timestamp as the dialect's bulk insert takes it."""
    return (
        o.target,
        o.target.partition("/")[0],
        at,
        str(o.source),
        o.kind,
        str(o.error_class),
        o.latency_s,
        o.ttft_s,
        o.tokens_per_s,
        o.status,
        o.headroom,
        o.retry_after_s,
        str(o.scope),
        (o.code or None) and o.code[:200],
        o.detail[:1000],
        json.dumps(o.extra, default=str) if o.extra else "{}",
    )


def empty_rollup(target: str, provider: str, minute: datetime) -> dict[str, Any]:
    base: dict[str, Any] = {"target": target, "provider": provider, "minute": minute}
    base.update({c: 0 for c in CLASS_COLUMNS.values()})
    base.update(latency_sum=0.0, latency_count=0, ttft_sum=0.0, ttft_count=0)
    return base


def observation_of(r: ObservationRow) -> Observation:
    return Observation(
        target=r.target,
        at=r.at.replace(tzinfo=UTC) if r.at.tzinfo is None else r.at.astimezone(UTC),
        source=Source(r.source),
        kind=r.kind,
        error_class=ErrorClass(r.error_class),
        latency_s=r.latency_s,
        ttft_s=r.ttft_s,
        tokens_per_s=r.tokens_per_s,
        status=r.status,
        headroom=r.headroom,
        retry_after_s=r.retry_after_s,
        scope=Scope(r.scope),
        code=r.code,
        detail=r.detail,
        extra=dict(r.extra or {}),
    )


class ProbeSpendRow(SQLModel, table=True):
    """USD spent by one provider's paid probes on one UTC day (probes/budget.py): the cap holds across restarts."""

    __tablename__ = "probe_spend"

    day: str = Field(primary_key=True)  # ISO date, UTC
    provider: str = Field(primary_key=True)
    spent_usd: float = 0.0
    updated_at: datetime = _utc_col()
