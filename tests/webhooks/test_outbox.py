"""The outbox: deliveries commit with their event, per subscription; nothing is queued when the event is not."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlmodel import Session

from controlplane.events import Event
from controlplane.webhooks.outbox import Outbox, enqueue
from tests.api.fakes import FakeRuntime
from tests.webhooks.conftest import add_endpoint, deliveries

AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_an_event_and_its_deliveries_commit_together(wrt: FakeRuntime) -> None:
    a = add_endpoint(wrt, "http://127.0.0.1:1/a")
    b = add_endpoint(wrt, "http://127.0.0.1:1/b", ["route.*"])
    [ev] = wrt.store.append_events(
        [Event(type="target.withdrawn", at=AT, subject="openai/gpt-4o", data={"why": "region_blocked"})]
    )
    got = deliveries(wrt)
    assert [(d.endpoint_id, d.event_id) for d in got] == [(a.id, ev.id)]
    assert orjson.loads(got[0].payload) == ev.to_dict()
    wrt.store.append_events([Event(type="route.primary_changed", at=AT, subject="frontier")])
    assert {d.endpoint_id for d in deliveries(wrt)} == {a.id, b.id}


def test_payload_matches_the_events_api(wrt: FakeRuntime) -> None:
    add_endpoint(wrt, "http://127.0.0.1:1/a")
    wrt.store.append_events([Event(type="target.withdrawn", at=AT, subject="t", data={"at": AT, "n": 1})])
    [listed] = wrt.store.list_events(after=0)
    assert orjson.loads(deliveries(wrt)[0].payload) == listed.to_dict()


def test_rollback_queues_nothing(wrt: FakeRuntime) -> None:
    add_endpoint(wrt, "http://127.0.0.1:1/a")
    outbox = Outbox(wrt.clock)
    with Session(wrt.store.engine) as s:
        outbox.hook(s, [Event(type="target.withdrawn", at=AT, subject="t", id=99)])
        s.rollback()
    assert deliveries(wrt) == []


def test_a_failing_store_transaction_loses_event_and_deliveries_together(wrt: FakeRuntime) -> None:
    add_endpoint(wrt, "http://127.0.0.1:1/a")

    def boom(session: Session, events: list[Event]) -> None:
        raise RuntimeError("disk on fire")

    wrt.store.add_event_hook(boom)
    with pytest.raises(RuntimeError):
        wrt.store.append_events([Event(type="target.withdrawn", at=AT, subject="t")])
    assert deliveries(wrt) == [] and wrt.store.list_events(after=0) == []


def test_test_events_go_only_to_their_endpoint_and_disable_events_skip_the_subject(wrt: FakeRuntime) -> None:
    a = add_endpoint(wrt, "http://127.0.0.1:1/a")
    b = add_endpoint(wrt, "http://127.0.0.1:1/b")
    wrt.store.append_events([Event(type="webhook.test", at=AT, subject=a.id)])
    assert [d.endpoint_id for d in deliveries(wrt)] == [a.id]
    wrt.store.append_events([Event(type="webhook.endpoint_disabled", at=AT, subject=a.id)])
    assert [d.endpoint_id for d in deliveries(wrt)] == [a.id, b.id]


def test_disabled_endpoints_get_nothing(wrt: FakeRuntime) -> None:
    a = add_endpoint(wrt, "http://127.0.0.1:1/a")
    with Session(wrt.store.engine) as s:
        ep = s.get(type(a), a.id)
        assert ep is not None
        ep.enabled = False
        s.add(ep)
        assert enqueue(s, [Event(type="target.withdrawn", at=AT, subject="t", id=1)], 0.0) == []


@pytest.mark.postgres
def test_an_endpoint_created_while_an_event_is_in_flight_waits_for_it(
    tmp_path: Path, webhooks_pg_url: str | None
) -> None:
    """PostgreSQL (SQLite serialises writers itself): creation waits for an in-flight append, so an endpoint
    gets exactly the events committed after its creation returned."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from controlplane.webhooks.outbox import install_outbox, lock_endpoints
    from tests.fakes import FakeClock
    from tests.support import require_integration

    require_integration(webhooks_pg_url is not None, "PostgreSQL not reachable at 127.0.0.1:5432")
    wrt = FakeRuntime(tmp_path, FakeClock(), db_url=webhooks_pg_url)
    install_outbox(wrt.store, wrt.clock)
    ev = Event(type="target.state_changed", at=AT, subject="openai/gpt-4o", data={}, id=1)
    with Session(wrt.store.engine) as appending:
        enqueue(appending, [ev], AT.timestamp())  # holds the shared lock until this transaction ends
        with Session(wrt.store.engine) as creating:
            creating.connection().execute(text("SET LOCAL lock_timeout = '100ms'"))
            with pytest.raises(OperationalError, match="lock timeout"):
                lock_endpoints(creating, exclusive=True)
        appending.commit()
    with Session(wrt.store.engine) as creating:
        lock_endpoints(creating, exclusive=True)  # free once the append has committed
        creating.commit()
    wrt.store.close()


@pytest.mark.postgres
def test_an_append_takes_the_shared_lock_before_its_events_get_ids(tmp_path: Path, webhooks_pg_url: str | None) -> None:
    """Ids are allocated at insert: an append blocked by an endpoint creation must not hold ids yet, or an event
    with a lower id could commit after the creation without a delivery (caught by the SIGKILL chaos test)."""
    import threading

    from sqlalchemy import text
    from sqlmodel import select

    from controlplane.webhooks.outbox import install_outbox, lock_endpoints
    from controlplane.webhooks.rows import WebhookDelivery, WebhookEndpoint
    from tests.fakes import FakeClock
    from tests.support import require_integration

    require_integration(webhooks_pg_url is not None, "PostgreSQL not reachable at 127.0.0.1:5432")
    from sqlalchemy import create_engine
    from sqlmodel import SQLModel

    fresh = create_engine(str(webhooks_pg_url))
    SQLModel.metadata.drop_all(fresh)  # start empty: earlier tests in this session left endpoints behind
    fresh.dispose()
    wrt = FakeRuntime(tmp_path, FakeClock(), db_url=webhooks_pg_url)
    install_outbox(wrt.store, wrt.clock)
    engine = wrt.store.engine

    def last_id() -> int:
        with engine.connect() as c:
            return int(c.execute(text("SELECT coalesce(max(id), 0) FROM events")).scalar_one())

    def waiting_for_advisory_lock() -> bool:
        with engine.connect() as c:
            return bool(
                c.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND "
                        "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    )
                ).scalar_one()
            )

    before = last_id()
    appended: list[Event] = []
    with Session(engine) as creating:
        lock_endpoints(creating, exclusive=True)
        worker = threading.Thread(
            target=lambda: appended.extend(
                wrt.store.append_events([Event(type="target.state_changed", at=AT, subject="openai/gpt-4o", data={})])
            )
        )
        worker.start()
        for _ in range(500):  # until the append waits on the lock (a state in pg_locks, not a timing guess)
            if waiting_for_advisory_lock():
                break
            threading.Event().wait(0.01)
        assert waiting_for_advisory_lock()
        with engine.connect() as c:  # nothing of the append is visible or numbered while it waits
            seq = c.execute(text("SELECT last_value, is_called FROM events_id_seq")).one()
        assert not seq.is_called or seq.last_value <= before
        creating.add(WebhookEndpoint(id="ep-new", url="https://example.com/hook", secret="whsec_x"))
        creating.commit()
    worker.join(10)
    assert appended and appended[0].id is not None and appended[0].id > before
    with Session(engine) as s:  # the creation returned first, so the append saw the endpoint
        rows = list(s.exec(select(WebhookDelivery).where(WebhookDelivery.event_id == appended[0].id)))
    assert [r.endpoint_id for r in rows] == ["ep-new"]
    wrt.store.close()
