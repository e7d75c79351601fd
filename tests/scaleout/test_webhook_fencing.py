"""A deposed leader cannot deliver webhooks (issue 18 item 6), on a real PostgreSQL with a real receiver: each
attempt is claimed in a transaction that checks the lease before the POST, and its outcome is written under the
same check, so an old leader that still believes it leads sends nothing once the term is over, and a send that
was under way when the term ended is sent again by the new leader with the same webhook-id. The lease is moved
in SQL (expired, or taken under another holder), never by waiting for it to run out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest
from sqlmodel import Session, select

from controlplane.config import WebhookConfig
from controlplane.events import Event, EventBus
from controlplane.fencing import LeaseFence
from controlplane.metrics import Metrics
from controlplane.scaleout.leader import LeaseElector, pg_conninfo
from controlplane.store import Store
from controlplane.webhooks.dispatcher import Dispatcher
from controlplane.webhooks.outbox import install_outbox
from controlplane.webhooks.queue import Claim
from controlplane.webhooks.rows import WebhookDelivery, WebhookEndpoint
from controlplane.webhooks.service import start_dispatcher
from controlplane.webhooks.signing import generate_secret
from tests.fakes import FakeClock
from tests.scaleout.helpers import expire_lease
from tests.support import until
from tests.webhooks.receiver import Receiver, types

pytestmark = [pytest.mark.postgres, pytest.mark.integration]

CONFIG = WebhookConfig(allow_private_networks=["127.0.0.0/8"])


def _take_over(pg_url: str, holder: str) -> int:
    """Another replica acquires the lease (as the elector's acquisition does: next term, fresh expiry)."""
    with psycopg.connect(pg_conninfo(pg_url), autocommit=True) as conn:
        row = conn.execute(
            "UPDATE turnout_leader SET holder = %s, term = term + 1, expires_at = now() + interval '1 minute' "
            "RETURNING term",
            (holder,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _leader_store(pg_url: str, clock: FakeClock, fence: LeaseFence) -> Store:
    store = Store(pg_url, clock)
    install_outbox(store, clock)  # events queue their deliveries in the same (fenced) transaction
    store.fence = fence
    return store


def _subscribe(store: Store, receiver: Receiver, clock: FakeClock) -> None:
    receiver.secret = generate_secret()
    with Session(store.engine) as s:
        s.add(WebhookEndpoint(id="ep_1", url=receiver.url, secret=receiver.secret, created_at=clock.wall().timestamp()))
        s.commit()


def _events(at: datetime, *subjects: str) -> list[Event]:
    return [Event("target.state_changed", at, subject, {}) for subject in subjects]


def _rows(store: Store) -> list[WebhookDelivery]:
    with Session(store.engine) as s:
        return list(s.exec(select(WebhookDelivery).order_by(WebhookDelivery.seq)))  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    """Still only moved by hand, but starting now: the receiver checks the signature's timestamp against its own."""
    return FakeClock(datetime.now(UTC))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def test_a_deposed_leader_sends_nothing_and_the_new_leader_sends_the_same_messages(
    pg_url: str, clock: FakeClock, receiver: Receiver
) -> None:
    old = LeaseElector(pg_url, lease=2.0, holder="old", clock=clock)
    new = LeaseElector(pg_url, lease=2.0, holder="new", clock=clock)
    try:
        assert await old.step() and old.term == 1
        old_store = _leader_store(pg_url, clock, LeaseFence("old", old.term))
        _subscribe(old_store, receiver, clock)
        # The old leader's dispatcher believes what its elector believes (a pause or a partition: no step since).
        sender = Dispatcher(
            engine=old_store.engine,
            clock=clock,
            config=CONFIG,
            fence=lambda: old.is_leader,
            write_fence=old_store.fence,
        )
        old_store.append_events(_events(clock.wall(), "p/a"))
        assert await sender.tick() == 1, "while the term holds the lease, its claims and sends go through"
        old_store.append_events(_events(clock.wall(), "p/b", "p/c"))
        queued = [r.id for r in _rows(old_store)[1:]]

        expire_lease(pg_url)
        assert await new.step() and new.term == 2
        assert old.is_leader, "the old leader still believes it leads: only the database can stop its sends"
        assert await sender.tick() == 0
        assert [r.msg_id for r in receiver.got] == [_rows(old_store)[0].id], "no request reached the receiver"
        after = _rows(old_store)[1:]
        assert [(r.status, r.attempts, r.claimed_term) for r in after] == [("pending", 0, None)] * 2, (
            "the refused claims left the rows as they were, for the new leader"
        )

        new_store = _leader_store(pg_url, clock, LeaseFence("new", new.term))
        successor = Dispatcher(engine=new_store.engine, clock=clock, config=CONFIG, write_fence=new_store.fence)
        assert await successor.tick() == 2
        assert [r.msg_id for r in receiver.got[1:]] == queued, "the same webhook-ids, in order"
        assert all(r.verified for r in receiver.got) and types(receiver.unique()) == ["target.state_changed"] * 3
        assert [(r.status, r.claimed_term) for r in _rows(new_store)] == [("delivered", None)] * 3
        for d in (sender, successor):
            await d.close()
        old_store.close()
        new_store.close()
    finally:
        for e in (old, new):
            await e._drop_connection()


@pytest.mark.parametrize("answer", [200, 500])
async def test_a_delivery_in_flight_when_the_term_ends_is_not_recorded_and_is_sent_again(
    pg_url: str, clock: FakeClock, receiver: Receiver, answer: int
) -> None:
    """The receiver gets the POST of term 1, then term 2 begins before the old leader writes what happened."""
    old = LeaseElector(pg_url, lease=2.0, holder="old", clock=clock)
    try:
        assert await old.step() and old.term == 1
        old_store = _leader_store(pg_url, clock, LeaseFence("old", old.term))
        _subscribe(old_store, receiver, clock)
        old_store.append_events(_events(clock.wall(), "p/a", "p/b"))
        first, second = (r.id for r in _rows(old_store))
        terms: list[int] = []
        receiver.script = [answer]
        receiver.on_receive = lambda n: terms.append(_take_over(pg_url, "new")) if n == 1 else None

        # The running service, as a leader starts it: the store's fence is the one its claims and outcomes carry.
        metrics = Metrics()
        task = start_dispatcher(
            old_store, EventBus(), clock, metrics, lambda: CONFIG, fence=lambda: old.is_leader, poll_interval=0.05
        )
        try:
            fenced = {"outcome": "fenced"}
            await until(
                lambda: metrics.registry.get_sample_value("turnout_webhook_deliveries_total", fenced) == 1,
                what="the in-flight attempt's outcome refused",
            )
            assert old.is_leader
            rows = _rows(old_store)
            assert [(r.status, r.attempts, r.claimed_term) for r in rows] == [
                ("pending", 0, 1),  # term 1 claimed it and sent it; what it did was never written
                ("pending", 0, None),  # and the next claim was refused: never sent
            ]
            assert (
                metrics.registry.get_sample_value("turnout_webhook_deliveries_total", {"outcome": "delivered"}) is None
            )
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert [r.msg_id for r in receiver.got] == [first]

        new_store = _leader_store(pg_url, clock, LeaseFence("new", terms[0]))
        successor = Dispatcher(engine=new_store.engine, clock=clock, config=CONFIG, write_fence=new_store.fence)
        assert await successor.tick() == 2
        assert [r.msg_id for r in receiver.got] == [first, first, second], "sent again under the same webhook-id"
        assert [r.msg_id for r in receiver.unique()] == [first, second] and all(r.verified for r in receiver.got)
        assert [(r.status, r.attempts, r.claimed_term) for r in _rows(new_store)] == [("delivered", 1, None)] * 2
        await successor.close()
        old_store.close()
        new_store.close()
    finally:
        await old._drop_connection()


async def test_a_claim_names_its_term_and_passes_over_a_row_that_is_no_longer_pending(
    pg_url: str, clock: FakeClock, receiver: Receiver
) -> None:
    """What the new leader finds on a row shows whose attempt was under way; a row settled meanwhile is not sent."""
    old = LeaseElector(pg_url, lease=2.0, holder="old", clock=clock)
    try:
        assert await old.step()
        store = _leader_store(pg_url, clock, LeaseFence("old", old.term))
        _subscribe(store, receiver, clock)
        store.append_events(_events(clock.wall(), "p/a", "p/b"))
        d = Dispatcher(engine=store.engine, clock=clock, config=CONFIG, write_fence=store.fence)
        jobs = d.queue.load_batch("ep_1")
        with psycopg.connect(pg_conninfo(pg_url), autocommit=True) as conn:  # settled after the batch was read
            conn.execute("UPDATE webhook_deliveries SET status = 'dead' WHERE seq = %s", (jobs[1].seq,))
        assert d.queue.write([Claim(j) for j in jobs]) == [(True, None), (False, None)]
        assert [(r.status, r.claimed_term) for r in _rows(store)] == [("pending", old.term), ("dead", None)]
        assert await d.tick() == 1 and [r.msg_id for r in receiver.got] == [jobs[0].id]
        assert [(r.status, r.claimed_term) for r in _rows(store)] == [("delivered", None), ("dead", None)]
        await d.close()
        store.close()
    finally:
        await old._drop_connection()
