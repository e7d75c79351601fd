"""The store's tables (SQLModel): raw observations, per-minute rollups, events, health snapshot, tables.

Every table lives in `SQLModel.metadata`, so other parts add their own tables beside these and call
`Store.create_schema()` after importing them. Timestamps are stored as UTC; columns only ever get added
(additive migrations), never renamed or dropped, so an older binary can still read a newer database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Integer, String
from sqlmodel import Field, SQLModel

from controlplane.domain import ErrorClass

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
]

# Bumped whenever a column or table is added; recorded in the `turnout_meta` row `schema_version`.
SCHEMA_VERSION = 1

# One counter column per error class in the rollups, e.g. `n_server_error` (atomic `col = col + n` upserts).
CLASS_COLUMNS: dict[ErrorClass, str] = {ec: f"n_{ec.value}" for ec in ErrorClass}


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


class ProbeSpendRow(SQLModel, table=True):
    """USD spent by one provider's paid probes on one UTC day (probes/budget.py): the cap holds across restarts."""

    __tablename__ = "probe_spend"

    day: str = Field(primary_key=True)  # ISO date, UTC
    provider: str = Field(primary_key=True)
    spent_usd: float = 0.0
    updated_at: datetime = _utc_col()
