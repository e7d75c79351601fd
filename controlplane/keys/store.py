"""The key store: make, list, show, revoke and rotate client keys, read their use this period, and read the ring
the data plane checks requests against. Blocking (SQLAlchemy); async callers run it in a thread.

Every change is also announced in this process at once (`on_change`): an all-in-one `turnout serve` drops a
revoked (or rotated) key before the API answers, and reads a new one at once; other processes learn of it from
their next ring read (`auth.data.refresh_interval`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session, SQLModel

from controlplane.clock import Clock
from controlplane.keys.model import KeyChange, KeyRecord, KeySpec, Ring, RingKey
from controlplane.keys.periods import day_of, period_bounds
from controlplane.keys.rows import ClientKeyRow, ClientKeySpendRow
from controlplane.keys.tokens import hash_key, new_key, new_key_id
from controlplane.rows import table_of

__all__ = ["KeyStore", "KeyUse", "KeyChange", "on_change", "ring_source"]

_LISTENERS: dict[int, list[Callable[[str, KeyChange], None]]] = {}  # id(engine) -> callbacks(key_id, change)


def on_change(engine: Engine, callback: Callable[[str, KeyChange], None]) -> Callable[[], None]:
    """Call `callback(key_id, change)` after a key is made, revoked or rotated through this engine in this
    process; returns a function that unsubscribes."""
    _LISTENERS.setdefault(id(engine), []).append(callback)

    def cancel() -> None:
        listeners = _LISTENERS.get(id(engine), [])
        if callback in listeners:
            listeners.remove(callback)

    return cancel


@dataclass(frozen=True, slots=True)
class KeyUse:
    """A key's use in its current budget period (from the spend rows, as the decision log has written them)."""

    period: str
    since: datetime
    until: datetime
    requests: int
    tokens_in: int
    tokens_out: int
    cost_usd: float

    def public(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "since": self.since.isoformat().replace("+00:00", "Z"),
            "until": self.until.isoformat().replace("+00:00", "Z"),
            "requests": self.requests,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": round(self.cost_usd, 6),
        }


def _record(r: ClientKeyRow) -> KeyRecord:
    return KeyRecord(
        id=r.id,
        name=r.name,
        routes=tuple(r.routes) if r.routes is not None else None,
        rpm=r.rpm,
        tpm=r.tpm,
        budget_usd=r.budget_usd,
        budget_period=r.budget_period,
        expires_at=r.expires_at,
        created_at=r.created_at,
        rotated_at=r.rotated_at,
        revoked_at=r.revoked_at,
    )


class KeyStore:
    """Client keys in the store behind `engine` (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine, self.clock = engine, clock
        SQLModel.metadata.create_all(engine, tables=[table_of(ClientKeyRow), table_of(ClientKeySpendRow)])

    def create(self, spec: KeySpec) -> tuple[KeyRecord, str]:
        """Make a key; returns its record and the key, which nothing keeps in clear after this."""
        now = self.clock.wall().timestamp()
        with Session(self.engine) as s:
            key_id = new_key_id()
            while s.get(ClientKeyRow, key_id) is not None:  # 36^8 ids: a clash is rare, never silent
                key_id = new_key_id()
            key = new_key(key_id)
            row = ClientKeyRow(
                id=key_id,
                name=spec.name,
                key_hash=hash_key(key),
                routes=spec.routes,
                rpm=spec.rpm,
                tpm=spec.tpm,
                budget_usd=spec.budget_usd,
                budget_period=spec.budget_period,
                expires_at=spec.expires_at.timestamp() if spec.expires_at else None,
                created_at=now,
            )
            s.add(row)
            s.commit()
            made = _record(row), key
        self._announce(key_id, "created")
        return made

    def records(self) -> list[KeyRecord]:
        with Session(self.engine) as s:
            rows = s.execute(select(ClientKeyRow).order_by(ClientKeyRow.created_at, ClientKeyRow.id)).scalars()  # type: ignore[arg-type]
            return [_record(r) for r in rows]

    def get(self, key_id: str) -> KeyRecord | None:
        with Session(self.engine) as s:
            row = s.get(ClientKeyRow, key_id)
            return _record(row) if row is not None else None

    def revoke(self, key_id: str) -> KeyRecord | None:
        """Revoke for good (idempotent); None for an unknown id."""
        with Session(self.engine) as s:
            row = s.get(ClientKeyRow, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = self.clock.wall().timestamp()
                s.add(row)
                s.commit()
            record = _record(row)
        self._announce(key_id, "revoked")
        return record

    def rotate(self, key_id: str) -> tuple[KeyRecord, str] | None:
        """A new secret for the same id (limits, spend and attribution continue); the old key stops working.
        None for an unknown id; ValueError for a revoked key."""
        with Session(self.engine) as s:
            row = s.get(ClientKeyRow, key_id)
            if row is None:
                return None
            if row.revoked_at is not None:
                raise ValueError(f"key {key_id} is revoked; create a new one")
            key = new_key(key_id)
            row.key_hash = hash_key(key)
            row.rotated_at = self.clock.wall().timestamp()
            s.add(row)
            s.commit()
            record = _record(row)
        self._announce(key_id, "rotated")
        return record, key

    def _announce(self, key_id: str, change: KeyChange) -> None:
        for callback in list(_LISTENERS.get(id(self.engine), [])):
            callback(key_id, change)

    def use(self, record: KeyRecord, now: datetime | None = None) -> KeyUse:
        """The key's requests, tokens and spend in its current budget period."""
        now = now or self.clock.wall()
        start, end = period_bounds(record.budget_period, now)
        t = table_of(ClientKeySpendRow).c
        stmt = select(
            func.coalesce(func.sum(t.requests), 0),
            func.coalesce(func.sum(t.tokens_in), 0),
            func.coalesce(func.sum(t.tokens_out), 0),
            func.coalesce(func.sum(t.cost_usd), 0.0),
        ).where(t.key_id == record.id, t.day >= day_of(start), t.day < day_of(end))
        with self.engine.connect() as conn:
            req, tin, tout, cost = conn.execute(stmt).one()
        return KeyUse(record.budget_period, start, end, int(req), int(tin), int(tout), float(cost))

    def ring(self) -> Ring:
        """Every usable key with its hash and its spend this period: what the data plane checks against."""
        now = self.clock.wall()
        ts = now.timestamp()
        with Session(self.engine) as s:
            rows = list(s.execute(select(ClientKeyRow)).scalars())
            spend = self._spend_by_day(s, [r.id for r in rows if r.revoked_at is None and r.budget_usd is not None])
        keys: list[RingKey] = []
        for r in rows:
            if r.revoked_at is not None or (r.expires_at is not None and ts >= r.expires_at):
                continue
            start, end = period_bounds(r.budget_period, now)
            lo, hi = day_of(start), day_of(end)
            spent = sum(cost for day, cost in spend.get(r.id, ()) if lo <= day < hi)
            keys.append(
                RingKey(
                    id=r.id,
                    name=r.name,
                    key_hash=r.key_hash,
                    routes=frozenset(r.routes) if r.routes is not None else None,
                    rpm=r.rpm,
                    tpm=r.tpm,
                    budget_usd=r.budget_usd,
                    budget_period=r.budget_period,
                    expires_at=r.expires_at,
                    spent_usd=spent,
                    period_end=end.timestamp(),
                )
            )
        return Ring(any_keys=bool(rows), keys=tuple(keys))

    def _spend_by_day(self, s: Session, key_ids: list[str]) -> dict[str, list[tuple[str, float]]]:
        if not key_ids:
            return {}
        first_day = day_of(period_bounds("month", self.clock.wall())[0])  # no period reaches further back
        week_day = day_of(period_bounds("week", self.clock.wall())[0])
        t = table_of(ClientKeySpendRow).c
        stmt = select(t.key_id, t.day, t.cost_usd).where(t.key_id.in_(key_ids), t.day >= min(first_day, week_day))
        out: dict[str, list[tuple[str, float]]] = {}
        for key_id, day, cost in s.execute(stmt):
            out.setdefault(key_id, []).append((day, float(cost)))
        return out


def ring_source(
    engine: Engine, clock: Clock
) -> tuple[Callable[[], Awaitable[Ring]], Callable[[Callable[[str, KeyChange], None]], Callable[[], None]]]:
    """What a data plane with the store (all-in-one) reads its key ring from: an async ring read (in a thread) and
    a subscription to this process's key changes (dataplane/keys.py KeyGate's `source` and `subscribe`)."""
    keys = KeyStore(engine, clock)

    async def read() -> Ring:
        return await asyncio.to_thread(keys.ring)

    def subscribe(callback: Callable[[str, KeyChange], None]) -> Callable[[], None]:
        return on_change(engine, callback)

    return read, subscribe
