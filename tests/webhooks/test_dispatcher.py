"""Dispatcher rules with a FakeClock and scripted receivers: order, schedule, dead, disable, metrics."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from sqlmodel import Session

from controlplane.events import Event
from controlplane.webhooks.dispatcher import RETRY_SCHEDULE, retry_delay
from controlplane.webhooks.rows import WebhookEndpoint
from tests.api.fakes import FakeRuntime
from tests.fakes import FakeClock
from tests.webhooks.conftest import add_endpoint, deliveries, make_dispatcher

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _advance(rt: FakeRuntime, seconds: float) -> None:
    clock = rt.clock  # the `wrt` fixture runs on a FakeClock
    assert isinstance(clock, FakeClock)
    clock.advance(seconds)


def _events(rt: FakeRuntime, n: int, kind: str = "target.state_changed") -> list[Event]:
    return rt.store.append_events(
        [Event(type=kind, at=rt.clock.wall(), subject="openai/gpt-4o", data={"n": i}) for i in range(n)]
    )


def test_retry_schedule_goes_from_seconds_to_hours_with_bounded_jitter() -> None:
    rng = random.Random(1)
    delays = [retry_delay(n, rng) for n in range(1, 8)]
    for d, base in zip(delays, RETRY_SCHEDULE, strict=True):
        assert 0.8 * base <= d <= 1.2 * base
    assert delays[0] < 10 and delays[-1] > 3600


async def test_delivers_in_order_per_endpoint(wrt: FakeRuntime) -> None:
    ep = add_endpoint(wrt, "http://127.0.0.1:1/a")
    _events(wrt, 5)
    d = make_dispatcher(wrt, {})
    assert await d.tick() == 5
    ns = [int(body.split(b'"n":')[1].split(b"}")[0]) for _, _, body in d.sent]
    assert ns == [0, 1, 2, 3, 4]
    assert all(x.status == "delivered" and x.attempts == 1 for x in deliveries(wrt, ep.id))
    assert wrt.metrics.registry.get_sample_value("turnout_webhook_deliveries_total", {"outcome": "delivered"}) == 5


async def test_a_failing_head_holds_its_endpoint_but_not_others(wrt: FakeRuntime) -> None:
    bad = add_endpoint(wrt, "http://127.0.0.1:1/bad")
    good = add_endpoint(wrt, "http://127.0.0.1:1/good")
    _events(wrt, 3)
    d = make_dispatcher(wrt, {bad.url: [500, 500]})
    await d.tick()
    assert [x.status for x in deliveries(wrt, good.id)] == ["delivered"] * 3
    bad_rows = deliveries(wrt, bad.id)
    assert [x.status for x in bad_rows] == ["pending"] * 3 and bad_rows[0].attempts == 1
    assert bad_rows[0].last_status_code == 500 and "HTTP 500" in (bad_rows[0].last_error or "")
    # Not due yet: nothing happens until the clock passes the first backoff (5 s ± 20 %).
    assert await d.tick() == 0
    _advance(wrt, 6.1)
    assert await d.tick() == 1  # second attempt fails again; the rest keep waiting behind it
    _advance(wrt, 300 * 1.21)
    assert await d.tick() == 3
    rows = deliveries(wrt, bad.id)
    assert [x.status for x in rows] == ["delivered"] * 3 and rows[0].attempts == 3
    ids = [mid for url, mid, _ in d.sent if url == bad.url]
    assert ids[0] == ids[1] == ids[2], "every attempt of one message carries the same webhook-id"


async def test_dead_after_last_attempt_then_endpoint_disabled_with_event(wrt: FakeRuntime) -> None:
    ep = add_endpoint(wrt, "http://127.0.0.1:1/down")
    watcher = add_endpoint(wrt, "http://127.0.0.1:1/watcher", ["webhook.*"])
    _events(wrt, 2)
    d = make_dispatcher(wrt, {ep.url: [503] * 100})
    for _ in range(20):
        await d.tick()
        _advance(wrt, 40_000)
    rows = deliveries(wrt, ep.id)
    max_attempts = wrt.config.webhooks.max_attempts
    assert [x.status for x in rows] == ["dead", "dead"] and all(x.attempts == max_attempts for x in rows)
    with Session(wrt.store.engine) as s:
        stored = s.get(WebhookEndpoint, ep.id)
        assert stored is not None and not stored.enabled and "in a row" in (stored.disabled_reason or "")
    disabled = wrt.store.list_events(after=0, types=["webhook.endpoint_disabled"])
    assert [e.subject for e in disabled] == [ep.id]
    assert "secret" not in str(disabled[0].data) and "whsec_" not in str(disabled[0].data)
    # other endpoints hear about it; the disabled one does not get it (or anything else) any more
    assert [x.event_type for x in deliveries(wrt, watcher.id)] == ["webhook.endpoint_disabled"]
    _events(wrt, 1)
    assert len(deliveries(wrt, ep.id)) == 2
    assert wrt.metrics.registry.get_sample_value("turnout_webhook_deliveries_total", {"outcome": "dead"}) == 2


async def test_queue_depth_gauge_counts_pending(wrt: FakeRuntime) -> None:
    ep = add_endpoint(wrt, "http://127.0.0.1:1/a")
    _events(wrt, 3)
    d = make_dispatcher(wrt, {ep.url: [500]})
    await d.tick()
    await d.tick()
    assert wrt.metrics.registry.get_sample_value("turnout_webhook_queue_depth") == 3


async def test_stored_errors_name_only_the_origin_of_the_url(wrt: FakeRuntime) -> None:
    from controlplane.webhooks.dispatcher import Dispatcher

    d = Dispatcher(engine=wrt.store.engine, clock=wrt.clock, config=wrt.config.webhooks)
    url = "http://10.1.1.1:9/hooks/T000/B000/s3cr3tpath?token=abc"
    result = await d.attempt(url, "msg_1", "whsec_AAAA", b"{}")
    await d.close()
    assert not result.ok and result.error is not None and result.error.startswith("refused")
    assert "s3cr3tpath" not in result.error and "token=abc" not in result.error


async def test_dead_count_follows_the_batch_in_order(wrt: FakeRuntime) -> None:
    from controlplane.webhooks.queue import AttemptResult, Job, Record

    ep = add_endpoint(wrt, "http://127.0.0.1:1/a")
    _events(wrt, 2)
    rows = deliveries(wrt, ep.id)
    with Session(wrt.store.engine) as s:
        stored = s.get(WebhookEndpoint, ep.id)
        assert stored is not None
        stored.consecutive_failures = 5
        s.add(stored)
        s.commit()
    d = make_dispatcher(wrt, {})
    last = wrt.config.webhooks.max_attempts - 1

    def job(i: int) -> Job:
        r = rows[i]
        return Job(
            seq=int(r.seq or 0),
            id=r.id,
            endpoint_id=ep.id,
            url=ep.url,
            secret="",
            payload=r.payload,
            attempts=last,
            next_attempt_at=0.0,
            created_at=0.0,
        )

    ok, dead = AttemptResult(True, 200, None, 0.0), AttemptResult(False, 500, "HTTP 500", 0.0)
    d.queue.write([Record(job(0), ok), Record(job(1), dead)])
    with Session(wrt.store.engine) as s:
        after = s.get(WebhookEndpoint, ep.id)
        assert after is not None and after.consecutive_failures == 1 and after.enabled
    assert [r.status for r in deliveries(wrt, ep.id)] == ["delivered", "dead"]


async def test_a_replica_without_the_leader_lease_sends_nothing_until_it_holds_it(wrt: FakeRuntime) -> None:
    ep = add_endpoint(wrt, "http://127.0.0.1:1/a")
    _events(wrt, 3)
    d = make_dispatcher(wrt, {})
    leading = False
    d._fence = lambda: leading  # what a scale-out control replica installs (its elector's lease)
    assert await d.tick() == 0 and d.sent == []
    assert [x.status for x in deliveries(wrt, ep.id)] == ["pending"] * 3, "nothing committed is lost while fenced"
    leading = True
    assert await d.tick() == 3
    assert [x.status for x in deliveries(wrt, ep.id)] == ["delivered"] * 3
