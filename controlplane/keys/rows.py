"""Client-key tables (SQLModel, in the shared metadata): the keys (hashed) and their spend per UTC day.

Times are UTC epoch seconds (floats), as the webhook tables keep them. `key_hash` is the SHA-256 of the key;
the key itself is never stored. `client_key_spend` is added to by the decision log's writer in the same
transaction as the decision rows (dataplane traffic and data replicas' reports alike), so a budget reads a few
rows per key instead of the decision log, which is pruned sooner than a month.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, String
from sqlmodel import Field, SQLModel

__all__ = ["ClientKeyRow", "ClientKeySpendRow", "SPEND_COLUMNS", "SPEND_SUMMED"]


class ClientKeyRow(SQLModel, table=True):
    """One client key: its public id, what it may do and its state. A revoked key stays (attribution, audit)."""

    __tablename__ = "client_keys"

    id: str = Field(primary_key=True, max_length=16)
    name: str = Field(sa_column=Column(String(200), nullable=False))
    key_hash: str = Field(max_length=64, repr=False)  # never in repr, logs or API output
    routes: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))  # None = every route
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: str = Field(default="month", max_length=8)
    expires_at: float | None = None
    created_at: float = 0.0
    rotated_at: float | None = None
    revoked_at: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ClientKeySpendRow(SQLModel, table=True):
    """Requests, tokens and estimated USD of one key on one UTC day (upserted, `col = col + n`)."""

    __tablename__ = "client_key_spend"

    key_id: str = Field(sa_column=Column(String(16), primary_key=True))
    day: str = Field(sa_column=Column(String(10), primary_key=True))  # '2026-12-02'
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0


SPEND_SUMMED = ("requests", "tokens_in", "tokens_out", "cost_usd")
SPEND_COLUMNS = ("key_id", "day", *SPEND_SUMMED)
