"""Real deliveries to a loopback receiver that verifies signatures with `standardwebhooks`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import Session

from controlplane.api.routes import install
from controlplane.clock import SystemClock
from controlplane.events import Event
from controlplane.webhooks.rows import WebhookEndpoint
from controlplane.webhooks.service import start_dispatcher
from controlplane.webhooks.signing import generate_secret
from tests.api.conftest import ADMIN
from tests.api.fakes import FakeRuntime
from tests.support import until
from tests.webhooks.conftest import deliveries
from tests.webhooks.receiver import Receiver, types

pytestmark = pytest.mark.integration
FAST = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[FakeRuntime, TestClient[Any, Any], Receiver]]:
    rt = FakeRuntime(tmp_path, SystemClock())
    app = web.Application()
    install(app, rt)
    receiver = await Receiver().start()
    task = start_dispatcher(
        rt.store, rt.bus, rt.clock, rt.metrics, lambda: rt.config.webhooks, poll_interval=0.05, schedule=FAST
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield rt, client, receiver
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await receiver.stop()


async def _register(
    client: TestClient[Any, Any], receiver: Receiver, events: list[str] | None = None
) -> dict[str, Any]:
    r = await client.post(
        "/api/v1/webhooks", json={"url": receiver.url, "events": events or [], "description": "test"}, headers=ADMIN
    )
    assert r.status == 201, await r.text()
    created: dict[str, Any] = await r.json()
    receiver.secret = created["secret"]
    return created


def _withdrawal(rt: FakeRuntime) -> list[Event]:
    at = datetime.now(UTC)
    return [
        Event(type="target.withdrawn", at=at, subject="openai/gpt-4o", data={"error_class": "region_blocked"}),
        Event(
            type="route.primary_changed",
            at=at,
            subject="frontier",
            data={"from": "openai/gpt-4o", "to": "anthropic/claude-sonnet-4"},
        ),
        Event(type="target.recovered", at=at, subject="openai/gpt-4o", data={}),
    ]


async def test_receiver_failing_twice_gets_each_event_exactly_once_after_dedup(setup: Any) -> None:
    rt, client, receiver = setup
    await _register(client, receiver)
    receiver.script = [500, 500]
    stored = await asyncio.to_thread(rt.store.append_events, _withdrawal(rt))
    await until(lambda: len(receiver.unique()) == 3)
    assert all(r.verified for r in receiver.got), "every delivery must verify with standardwebhooks"
    assert types(receiver.unique()) == ["target.withdrawn", "route.primary_changed", "target.recovered"]
    assert [r.body["id"] for r in receiver.unique()] == [e.id for e in stored]
    assert len(receiver.got) == 5  # two failed attempts of the first message, then one each
    assert receiver.got[0].msg_id == receiver.got[1].msg_id == receiver.got[2].msg_id


async def test_secret_is_shown_once_and_urls_are_ssrf_checked(setup: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    rt, client, receiver = setup
    created = await _register(client, receiver, ["target.*"])
    assert created["secret"].startswith("whsec_")
    listed = await (await client.get("/api/v1/webhooks", headers=ADMIN)).text()
    one = await (await client.get(f"/api/v1/webhooks/{created['id']}", headers=ADMIN)).text()
    assert created["secret"] not in listed and created["secret"] not in one and "secret" not in one
    for url in ("http://10.0.0.1/x", "http://169.254.169.254/latest", "gopher://example.com/", "http://[::1]/"):
        r = await client.post("/api/v1/webhooks", json={"url": url}, headers=ADMIN)
        err = (await r.json())["error"]
        assert r.status == 422 and err["field"] == "url", url
    r = await client.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["nope"]}, headers=ADMIN)
    assert r.status == 422 and (await r.json())["error"]["field"] == "events"
    receiver.script = [500]
    await asyncio.to_thread(rt.store.append_events, _withdrawal(rt)[:1])
    await until(lambda: len(receiver.unique()) == 1)
    key = created["secret"].removeprefix("whsec_")
    assert key not in caplog.text and ADMIN["Authorization"].split()[1] not in caplog.text


async def test_test_message_deliveries_listing_redeliver_and_delete(setup: Any) -> None:
    rt, client, receiver = setup
    created = await _register(client, receiver)
    ep = created["id"]
    r = await client.post(f"/api/v1/webhooks/{ep}/test", headers=ADMIN)
    assert r.status == 202
    delivery_id = (await r.json())["delivery_id"]
    await until(lambda: len(receiver.got) == 1)
    assert receiver.got[0].msg_id == delivery_id and types(receiver.got) == ["webhook.test"]
    await until(lambda: deliveries(rt, ep)[0].status == "delivered")
    listed = (await (await client.get(f"/api/v1/webhooks/{ep}/deliveries", headers=ADMIN)).json())["deliveries"]
    assert listed[0]["status"] == "delivered" and listed[0]["attempts"] == 1 and listed[0]["last_status_code"] == 200
    r = await client.post(f"/api/v1/webhooks/{ep}/deliveries/{delivery_id}/redeliver", headers=ADMIN)
    assert r.status == 202
    await until(lambda: len(receiver.got) == 2)
    assert receiver.got[1].msg_id == delivery_id, "a redelivery keeps its webhook-id"
    assert (await client.delete(f"/api/v1/webhooks/{ep}", headers=ADMIN)).status == 204
    assert (await client.get(f"/api/v1/webhooks/{ep}", headers=ADMIN)).status == 404


async def test_redirects_are_not_followed_and_private_literals_refused_at_delivery(setup: Any) -> None:
    rt, client, receiver = setup
    await _register(client, receiver)
    receiver.script = [302] * 20
    sneaky = WebhookEndpoint(id="ep_sneaky", url="http://10.9.9.9:1/x", secret=generate_secret(), created_at=0.0)
    with Session(rt.store.engine) as s:  # as if the address was acceptable when created
        s.add(sneaky)
        s.commit()
    await asyncio.to_thread(rt.store.append_events, _withdrawal(rt)[:1])
    await until(lambda: any((d.last_error or "").startswith("refused") for d in deliveries(rt, "ep_sneaky")))
    await until(lambda: len(receiver.got) >= 2)
    first = [d for d in deliveries(rt) if d.endpoint_id != "ep_sneaky"][0]
    assert (
        first.status == "pending"
        and first.last_status_code == 302
        and "redirect not followed" in (first.last_error or "")
    )


async def test_a_disabled_endpoint_refuses_tests_until_re_enabled(setup: Any) -> None:
    rt, client, receiver = setup
    created = await _register(client, receiver)
    ep = created["id"]
    with Session(rt.store.engine) as s:
        row = s.get(WebhookEndpoint, ep)
        assert row is not None
        row.enabled, row.disabled_reason, row.consecutive_failures = False, "50 deliveries in a row failed", 50
        s.add(row)
        s.commit()
    r = await client.post(f"/api/v1/webhooks/{ep}/test", headers=ADMIN)
    assert r.status == 409 and (await r.json())["error"]["code"] == "endpoint_disabled"
    r = await client.post(f"/api/v1/webhooks/{ep}/enable", headers=ADMIN)
    body = await r.json()
    assert r.status == 200 and body["enabled"] and body["consecutive_failures"] == 0 and "secret" not in body
    assert (await client.post(f"/api/v1/webhooks/{ep}/test", headers=ADMIN)).status == 202
    await until(lambda: len(receiver.unique()) == 1)
