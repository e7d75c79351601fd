"""The webhook delivery queue in the database: which deliveries are due, and what each attempt did.

Blocking SQL (the dispatcher runs it in a thread): one query finds the due head of every enabled endpoint, a
batch is read in `seq` order, and a batch of attempts' outcomes (with, when fenced, the claims of the next
attempts) is written in one transaction (executemany per outcome), with each endpoint's consecutive-dead count
and its disabling decided there. The async side (workers, the signed POST, group commit) is
controlplane/webhooks/dispatcher.py.

Scale-out (a `fence` is given: an elected leader on PostgreSQL): each attempt is first claimed in a transaction
that checks the lease (controlplane/fencing.py) and records the claiming term on the row, and outcomes are
written under the same check; a deposed leader gets `Fenced` from either and leaves the rows pending for the
leader that holds the lease. Without a fence (one process, SQLite) there is no claim and no check.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from sqlalchemy import Engine, bindparam, func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from controlplane.clock import Clock
from controlplane.config import WebhookConfig
from controlplane.fencing import Fenced, LeaseFence
from controlplane.metrics import Metrics
from controlplane.rows import table_of
from controlplane.webhooks.retry import RETRY_SCHEDULE, retry_delay
from controlplane.webhooks.rows import DEAD, DELIVERED, PENDING, WebhookDelivery, WebhookEndpoint

__all__ = ["AttemptResult", "Job", "DisabledEndpoint", "Outcome", "Claim", "Record", "DeliveryQueue"]

log = logging.getLogger("turnout.webhooks")


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one signed POST did; `error` is short and never holds the signature or the URL's secrets."""

    ok: bool
    status: int | None
    error: str | None
    duration_s: float


@dataclass(frozen=True, slots=True)
class Job:
    """One pending delivery with its endpoint's address and secret."""

    seq: int
    id: str
    endpoint_id: str
    url: str
    secret: str
    payload: str
    attempts: int
    next_attempt_at: float
    created_at: float


class DisabledEndpoint(TypedDict):
    """An endpoint this batch disabled: the data of its `webhook.endpoint_disabled` event."""

    endpoint_id: str
    consecutive_failures: int
    last_error: str | None


Outcome = tuple[bool, DisabledEndpoint | None]  # (go on with this endpoint?, the endpoint this write disabled)


@dataclass(frozen=True, slots=True)
class Claim:
    """Scale-out: this term is about to attempt `job` (written, fenced, before the POST)."""

    job: Job


@dataclass(frozen=True, slots=True)
class Record:
    """What one attempt at `job` did."""

    job: Job
    result: AttemptResult


def job_of(r: Any) -> Job:
    return Job(
        seq=int(r.seq),
        id=r.id,
        endpoint_id=r.endpoint_id,
        url=r.url,
        secret=r.secret,
        payload=r.payload,
        attempts=int(r.attempts),
        next_attempt_at=float(r.next_attempt_at),
        created_at=float(r.created_at),
    )


class DeliveryQueue:
    """The outbox tables as a queue. `schedule` None follows `config().retry_schedule`."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        config: Callable[[], WebhookConfig],
        *,
        rng: random.Random,
        batch: int,
        schedule: tuple[float, ...] | None = None,
        metrics: Metrics | None = None,
        fence: LeaseFence | None = None,
    ) -> None:
        self._engine, self._clock, self._config = engine, clock, config
        self._rng, self._batch, self._schedule, self._metrics = rng, batch, schedule, metrics
        self.fence = fence

    def due_heads(self, busy: frozenset[str] = frozenset()) -> dict[str, list[Job]]:
        """First batch of each enabled endpoint (not `busy`) whose oldest pending delivery is due now.

        One query for all endpoints (ROW_NUMBER per endpoint, SQLite ≥ 3.25 and PostgreSQL), so a burst
        fanned out to many endpoints costs one read, not one per endpoint. Also refreshes the queue gauge.
        """
        now = self._clock.wall().timestamp()
        with Session(self._engine) as s:
            heads = (
                select(WebhookDelivery.endpoint_id, func.min(WebhookDelivery.seq).label("head"))
                .where(WebhookDelivery.status == PENDING)
                .group_by(col(WebhookDelivery.endpoint_id))
                .subquery()
            )
            rows = s.exec(
                select(WebhookDelivery.endpoint_id)
                .join(heads, col(WebhookDelivery.seq) == heads.c.head)
                .join(WebhookEndpoint, col(WebhookEndpoint.id) == WebhookDelivery.endpoint_id)
                .where(WebhookEndpoint.enabled == True, WebhookDelivery.next_attempt_at <= now)  # noqa: E712
            ).all()
            if self._metrics is not None:
                depth = s.exec(
                    select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == PENDING)
                ).one()
                self._metrics.webhook_queue_depth.set(depth)
            ids = sorted(set(rows) - busy)
            if not ids:
                return {}
            d = table_of(WebhookDelivery).c
            rn = func.row_number().over(partition_by=d.endpoint_id, order_by=d.seq).label("rn")
            ranked = select(d.seq.label("seq"), rn).where(d.status == PENDING, d.endpoint_id.in_(ids)).subquery()
            out: dict[str, list[Job]] = {}
            for r in s.execute(
                self._job_query()
                .join(ranked, ranked.c.seq == d.seq)
                .where(ranked.c.rn <= self._batch)
                .order_by(d.endpoint_id, d.seq)
            ):
                out.setdefault(r.endpoint_id, []).append(job_of(r))
        return out

    @staticmethod
    def _job_query() -> Any:
        d = table_of(WebhookDelivery).c
        e = table_of(WebhookEndpoint).c
        return (
            sa_select(
                d.seq, d.id, d.endpoint_id, e.url, e.secret, d.payload, d.attempts, d.next_attempt_at, d.created_at
            )
            .join_from(table_of(WebhookDelivery), table_of(WebhookEndpoint), e.id == d.endpoint_id)
            .where(e.enabled == True)  # noqa: E712
        )

    def seconds_to_next_due(self) -> float | None:
        with Session(self._engine) as s:
            nxt = s.exec(
                select(func.min(WebhookDelivery.next_attempt_at))
                .join(WebhookEndpoint, col(WebhookEndpoint.id) == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.status == PENDING, WebhookEndpoint.enabled == True)  # noqa: E712
            ).one()
        return None if nxt is None else float(nxt) - self._clock.wall().timestamp()

    def load_batch(self, endpoint_id: str) -> list[Job]:
        d = table_of(WebhookDelivery).c
        q = (
            self._job_query()
            .where(d.endpoint_id == endpoint_id, d.status == PENDING)
            .order_by(d.seq)
            .limit(self._batch)
        )
        with Session(self._engine) as s:
            return [job_of(r) for r in s.execute(q)]

    def write(self, steps: Sequence[Claim | Record]) -> list[Outcome]:
        """Write steps queued together (group commit) in one transaction; one outcome per step, in order.

        A Record stores what an attempt did; a Claim marks a delivery as attempted by this leadership term
        before its POST, and comes back (True, None) when claimed, (False, None) when the row is no longer
        pending (delivered, dead or deleted meanwhile: nothing to send). With a fence the transaction first
        checks the lease and raises Fenced (nothing written) once the term is over: no claimed send may
        start, and the rows of attempts already made stay pending, so the leader that holds the lease sends
        them again with the same webhook-id. Claims need a fence: one process has nothing to claim against.
        """
        claims = [st.job for st in steps if isinstance(st, Claim)]
        records = [(st.job, st.result) for st in steps if isinstance(st, Record)]
        if claims and self.fence is None:
            raise RuntimeError("claims are for a fenced (scale-out) dispatcher")
        prepared = self._prepare(records)
        with Session(self._engine) as s:
            if self.fence is not None:
                try:
                    self.fence.check(s, "write_webhook_attempts")
                except Fenced:
                    if self._metrics is not None and records:
                        self._metrics.webhook_deliveries_total.labels(outcome="fenced").inc(len(records))
                    raise
            self._record(s, prepared)
            claimed = self._claim(s, claims) if claims else set()
            s.commit()
        self._observe(prepared)
        recorded = iter(prepared.out)
        return [(st.job.seq in claimed, None) if isinstance(st, Claim) else next(recorded) for st in steps]

    def _claim(self, s: Session, jobs: list[Job]) -> set[int]:
        assert self.fence is not None
        d = table_of(WebhookDelivery).c
        return set(
            s.execute(
                update(table_of(WebhookDelivery))
                .where(d.seq.in_([j.seq for j in jobs]), d.status == PENDING)
                .values(claimed_term=self.fence.term)
                .returning(d.seq)
            ).scalars()
        )

    def _prepare(self, items: list[tuple[Job, AttemptResult]]) -> _Prepared:
        """Attempts' outcomes as row updates. Each endpoint's consecutive-dead count follows the items in order:
        a success resets it, each dead adds one (applied in `_record`, which may also disable the endpoint)."""
        now = self._clock.wall().timestamp()
        cfg = self._config()
        schedule = self._schedule or tuple(getattr(cfg, "retry_schedule", RETRY_SCHEDULE))
        p = _Prepared(disable_after=cfg.disable_after_failures)
        for i, (job, result) in enumerate(items):
            attempts = job.attempts + 1
            row = {"b_seq": job.seq, "b_attempts": attempts, "b_code": result.status, "b_error": result.error}
            if result.ok:
                p.rows[DELIVERED].append({**row, "b_at": now})
                p.order.setdefault(job.endpoint_id, []).append((True, i))
                p.latencies.append(max(0.0, now - job.created_at))
                p.out.append((True, None))
            elif attempts < cfg.max_attempts:
                p.rows[PENDING].append({**row, "b_next": now + retry_delay(attempts, self._rng, schedule)})
                p.out.append((False, None))
            else:
                p.rows[DEAD].append(row)
                p.order.setdefault(job.endpoint_id, []).append((False, i))
                p.out.append((True, None))
                p.dead.append((job, attempts, result.error))
            p.errors.append(result.error)
        return p

    def _record(self, s: Session, p: _Prepared) -> None:
        """Apply prepared outcomes in `s` (few statements per batch: executemany per outcome); no commit."""
        d = table_of(WebhookDelivery).c
        e = table_of(WebhookEndpoint).c
        by_seq = update(table_of(WebhookDelivery)).where(d.seq == bindparam("b_seq"))
        common: dict[str, Any] = {
            "attempts": bindparam("b_attempts"),
            "last_status_code": bindparam("b_code"),
            "last_error": bindparam("b_error"),
            "claimed_term": None,  # the attempt is over
        }
        if p.rows[DELIVERED]:
            s.execute(by_seq.values(status=DELIVERED, delivered_at=bindparam("b_at"), **common), p.rows[DELIVERED])
        if p.rows[PENDING]:
            s.execute(by_seq.values(next_attempt_at=bindparam("b_next"), **common), p.rows[PENDING])
        if p.rows[DEAD]:
            s.execute(by_seq.values(status=DEAD, **common), p.rows[DEAD])
        resets = sorted(ep for ep, seq in p.order.items() if seq[-1][0])
        if resets:
            s.execute(
                update(table_of(WebhookEndpoint))
                .where(e.id.in_(resets), e.consecutive_failures != 0)
                .values(consecutive_failures=0)
            )
        for ep_id, seq in p.order.items():
            if seq[-1][0]:
                continue  # ends with a success: reset above
            tail = len(seq) - max((k + 1 for k, (ok, _) in enumerate(seq) if ok), default=0)
            ep = s.get(WebhookEndpoint, ep_id)
            if ep is None:
                continue
            ep.consecutive_failures = (0 if any(ok for ok, _ in seq) else ep.consecutive_failures) + tail
            if ep.enabled and ep.consecutive_failures >= p.disable_after:
                ep.enabled = False
                last_error = p.errors[seq[-1][1]]
                ep.disabled_reason = (
                    f"{ep.consecutive_failures} deliveries in a row failed every attempt; last: {last_error}"
                )
                p.out[seq[-1][1]] = (
                    False,
                    DisabledEndpoint(
                        endpoint_id=ep.id,
                        consecutive_failures=ep.consecutive_failures,
                        last_error=last_error,
                    ),
                )
            s.add(ep)

    def _observe(self, p: _Prepared) -> None:
        """After the commit: what was written is what the logs and metrics say."""
        for job, attempts, error in p.dead:
            log.warning(
                "webhook delivery %s to %s is dead after %d attempts: %s", job.id, job.endpoint_id, attempts, error
            )
        if self._metrics is not None:
            for outcome, key in (("delivered", DELIVERED), ("failed", PENDING), ("dead", DEAD)):
                if p.rows[key]:
                    self._metrics.webhook_deliveries_total.labels(outcome=outcome).inc(len(p.rows[key]))
            for lat in p.latencies:
                self._metrics.webhook_delivery_seconds.observe(lat)


@dataclass
class _Prepared:
    """Outcomes as row updates, before they are written (DeliveryQueue._prepare)."""

    disable_after: int  # config.webhooks.disable_after_failures when the outcomes were prepared
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {DELIVERED: [], PENDING: [], DEAD: []})
    order: dict[str, list[tuple[bool, int]]] = field(default_factory=dict)  # endpoint → [(ok?, item index)]
    latencies: list[float] = field(default_factory=list)
    out: list[Outcome] = field(default_factory=list)  # per item: (go on with the endpoint?, disabled info)
    errors: list[str | None] = field(default_factory=list)
    dead: list[tuple[Job, int, str | None]] = field(default_factory=list)
