"""Webhook tables (SQLModel, in the shared `SQLModel.metadata`): endpoints and their deliveries (the outbox).

Times are stored as UTC epoch seconds (floats): they compare the same on SQLite and PostgreSQL and
survive restarts, unlike monotonic readings. A delivery's `payload` is the exact body bytes sent on every
attempt, so signatures and receivers' de-duplication by `webhook-id` see the same message each time.
"""

from __future__ import annotations

import json
import secrets
from typing import Optional

from sqlalchemy import Index, Text
from sqlmodel import Column, Field, SQLModel

__all__ = ["WebhookEndpoint", "WebhookDelivery", "PENDING", "DELIVERED", "DEAD", "new_endpoint_id", "new_message_id"]

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


def new_endpoint_id() -> str:
    return "ep_" + secrets.token_hex(10)


def new_message_id() -> str:
    """The `webhook-id`: unique per message, the same on every attempt (receivers de-duplicate on it)."""
    return "msg_" + secrets.token_hex(12)


class WebhookEndpoint(SQLModel, table=True):
    """A receiver URL subscribed to some event types. `secret` signs deliveries; the API never shows it again."""

    __tablename__ = "webhook_endpoints"

    id: str = Field(primary_key=True, max_length=40)
    url: str = Field(sa_column=Column(Text, nullable=False))
    events_json: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # [] = every type
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    secret: str = Field(max_length=128, repr=False)  # never in repr, logs or API output after creation
    enabled: bool = True
    disabled_reason: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))  # noqa: UP045 (SQLModel needs Optional here)
    consecutive_failures: int = 0  # dead deliveries in a row; reset by any success
    created_at: float = 0.0

    @property
    def events(self) -> list[str]:
        return list(json.loads(self.events_json))

    def wants(self, event_type: str) -> bool:
        """Subscribed to this type? `[]` means all; `target.*` matches a family."""
        wanted = self.events
        if not wanted:
            return True
        return any(w == event_type or (w.endswith(".*") and event_type.startswith(w[:-1])) for w in wanted)


class WebhookDelivery(SQLModel, table=True):
    """One message to one endpoint; attempts update it in place. `seq` orders deliveries per endpoint."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_queue", "endpoint_id", "status", "seq"),)

    seq: Optional[int] = Field(default=None, primary_key=True)  # noqa: UP045
    id: str = Field(max_length=40, unique=True, index=True)
    endpoint_id: str = Field(max_length=40, index=True)
    event_id: Optional[int] = None  # noqa: UP045
    event_type: str = Field(max_length=80)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default=PENDING, max_length=16)
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))  # noqa: UP045
    last_status_code: Optional[int] = None  # noqa: UP045
    created_at: float = 0.0
    delivered_at: Optional[float] = None  # noqa: UP045
    # Scale-out: the leader term whose attempt is under way (claimed in a fenced transaction before the send,
    # cleared when its outcome is recorded). Still set on a pending row: that term's outcome never landed, so the
    # message may have arrived; the next attempt sends it again with the same webhook-id. None on SQLite.
    claimed_term: Optional[int] = None  # noqa: UP045
