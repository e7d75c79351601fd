"""Fencing: a deposed leader's writes are refused by the database itself.

A leader that is partitioned away (or paused) may still believe it leads for up to `lease × SAFETY` seconds
after its last renewal (controlplane/scaleout/leader.py). Its local step-down is not the guarantee; this is:
every write that carries leadership (health snapshot and tables, events and their webhook outbox rows, the claim
of each webhook delivery attempt before its POST and that attempt's outcome) first reads the lease row
`FOR SHARE` in its own transaction and commits only while that row still names this holder and term with an
unexpired lease. The share lock makes a new leader's acquisition (an UPDATE of the same row) wait until the
write has committed, so no write of term N lands after term N+1 began.

A webhook POST is not a database write, so the claim bounds it rather than fences it: a send leaves only
after a claim of its term committed, and one that was under way when the term ended has its outcome refused,
so the next leader sends that message again with the same `webhook-id` (controlplane/webhooks/dispatcher.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session

from controlplane.errors import StoreError

__all__ = ["LeaseFence", "Fenced", "LEASE_TABLE"]

LEASE_TABLE = "turnout_leader"  # created by the elector (controlplane/scaleout/leader.py)

_CHECK = text(
    f"SELECT term FROM {LEASE_TABLE} "
    "WHERE name = :name AND holder = :holder AND term = :term AND expires_at > now() FOR SHARE"
)


class Fenced(StoreError):
    """A write refused because its leadership period is over (another replica leads, or the lease ran out)."""

    def __init__(self, operation: str, fence: LeaseFence) -> None:
        self.fence = fence
        super().__init__(operation, f"fenced: term {fence.term} of {fence.holder} no longer holds the lease")


@dataclass(frozen=True, slots=True)
class LeaseFence:
    """One leadership period as the lease row names it."""

    holder: str
    term: int
    name: str = "control"

    def check(self, session: Session, operation: str) -> None:
        """Inside the write's transaction: raise Fenced unless this period still holds the lease."""
        row = session.execute(_CHECK, {"name": self.name, "holder": self.holder, "term": self.term}).first()
        if row is None:
            raise Fenced(operation, self)
