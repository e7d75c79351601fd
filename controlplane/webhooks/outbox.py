"""The durable outbox: the store hook that turns stored events into pending deliveries in the SAME transaction.

`store.append_events` calls `Outbox.hook(session, stored_events)` inside its transaction, so an event and its
deliveries commit together or not at all: after a `kill -9` nothing committed is lost and nothing is half
written. After the commit the outbox wakes the dispatcher (thread-safe: the store may run in a worker thread).
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, insert, text
from sqlalchemy import event as sa_event
from sqlmodel import Session, SQLModel, select

from controlplane.clock import Clock
from controlplane.events import Event
from controlplane.rows import table_of
from controlplane.webhooks.rows import PENDING, WebhookDelivery, WebhookEndpoint, new_message_id

if TYPE_CHECKING:
    from controlplane.store import Store

__all__ = ["Outbox", "install_outbox", "ensure_schema", "event_body", "enqueue", "lock_endpoints"]

log = logging.getLogger("turnout.webhooks")
_TEST_EVENT = "webhook.test"
_ENDPOINT_EVENTS = ("webhook.endpoint_disabled",)  # about one endpoint: never sent to that endpoint itself


def event_body(event: Event) -> bytes:
    """The webhook body: exactly the event's API payload (`Event.to_dict()`), compact JSON."""
    d = event.to_dict()
    # The same JSON-safe conversion the store applies to `data`, so webhooks and /api/v1/events agree byte for byte.
    d["data"] = json.loads(json.dumps(d["data"], default=str)) if d["data"] else {}
    return orjson.dumps(d)


def ensure_schema(engine: Engine) -> None:
    """Create the webhook tables if missing (idempotent), whether or not the store already did."""
    SQLModel.metadata.create_all(engine, tables=[table_of(WebhookEndpoint), table_of(WebhookDelivery)])


_ENDPOINTS_LOCK = 0x77686F6B  # advisory lock key: event appends (shared) vs endpoint creation (exclusive)


def lock_endpoints(session: Session, *, exclusive: bool) -> None:
    """Order event appends against endpoint creation on PostgreSQL (held until the transaction ends).

    Appends take it shared (before their events are inserted and get their ids), creation exclusive: an append
    that began before a new endpoint committed has itself committed before that creation returns, and every later
    append sees the endpoint and has higher event ids. So an endpoint receives exactly the events committed after
    its creation returned. (SQLite serialises writers already.)"""
    if session.get_bind().dialect.name == "postgresql":
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        session.connection().execute(text(f"SELECT {fn}(:k)"), {"k": _ENDPOINTS_LOCK})


def _recipients(event: Event, endpoints: Iterable[WebhookEndpoint]) -> list[WebhookEndpoint]:
    if event.type == _TEST_EVENT:  # a test message goes only to the endpoint it tests
        return [ep for ep in endpoints if ep.id == event.subject]
    return [
        ep
        for ep in endpoints
        if ep.wants(event.type) and not (event.type in _ENDPOINT_EVENTS and ep.id == event.subject)
    ]


def enqueue(session: Session, events: Iterable[Event], now: float) -> list[dict[str, Any]]:
    """Insert one pending delivery per (event, subscribed enabled endpoint) in the session's transaction (no commit).

    A bulk Core insert: fan-out to many endpoints is one statement, not one ORM object each.
    """
    events = list(events)
    if not events:
        return []
    lock_endpoints(session, exclusive=False)
    endpoints = list(session.exec(select(WebhookEndpoint).where(WebhookEndpoint.enabled == True)))  # noqa: E712
    rows: list[dict[str, Any]] = []
    for ev in events:
        targets = _recipients(ev, endpoints)
        if not targets:
            continue
        body = event_body(ev).decode()
        created = ev.at.timestamp() if ev.at.tzinfo else now
        for ep in targets:
            rows.append(
                {
                    "id": new_message_id(),
                    "endpoint_id": ep.id,
                    "event_id": ev.id,
                    "event_type": ev.type,
                    "payload": body,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": created,
                }
            )
    if rows:
        session.execute(insert(WebhookDelivery), rows)
    return rows


class Outbox:
    """Registered once per store; dispatchers subscribe to be woken after each commit that queued work."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._wakers: list[Callable[[], None]] = []

    def add_waker(self, fn: Callable[[], None]) -> Callable[[], None]:
        self._wakers.append(fn)
        return lambda: self._wakers.remove(fn) if fn in self._wakers else None

    def wake(self) -> None:
        for fn in list(self._wakers):
            try:
                fn()
            except RuntimeError:  # the dispatcher's loop is closed: it will poll on restart
                pass

    def hook(self, session: Session, stored_events: list[Event]) -> None:
        """The store event hook: runs inside the store's transaction (must not commit)."""
        queued = enqueue(session, stored_events, self._clock.wall().timestamp())
        if queued and not session.info.get("turnout_outbox_wake"):
            session.info["turnout_outbox_wake"] = True

            def _after_commit(sess: Session) -> None:
                sess.info.pop("turnout_outbox_wake", None)
                self.wake()

            sa_event.listen(session, "after_commit", _after_commit, once=True)


_installed: weakref.WeakKeyDictionary[Store, Outbox] = weakref.WeakKeyDictionary()


def install_outbox(store: Store, clock: Clock) -> Outbox:
    """Create the webhook tables and register the outbox hook on `store` (once per store; idempotent)."""
    existing = _installed.get(store)
    if existing is not None:
        return existing
    ensure_schema(store.engine)
    outbox = Outbox(clock)
    # The shared lock is taken before the events are inserted: ids are allocated at insert, so an append that
    # got its ids before an endpoint was created must also commit before that creation returns.
    store.add_event_hook(outbox.hook, before_insert=lambda session: lock_endpoints(session, exclusive=False))
    _installed[store] = outbox
    return outbox
