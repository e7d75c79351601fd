"""Status API behaviour: table + ETag + long-poll, routes, targets, providers, events, uptime, overrides, summary."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient

from controlplane.domain import ErrorClass, Observation, State
from controlplane.errors import ConfigError
from controlplane.events import Event
from controlplane.version import __version__
from tests.api.conftest import ADMIN, READ
from tests.api.fakes import ADMIN_TOKEN, FakeRuntime

Client = TestClient[Any, Any]


async def test_table_has_version_and_etag_and_honours_if_none_match(client: Client, rt: FakeRuntime) -> None:
    r = await client.get("/api/v1/table")
    assert r.status == 200
    body = await r.json()
    assert body["version"] == 1 and set(body["routes"]) == {"frontier", "cheap"}
    assert r.headers["ETag"] == '"1"'
    r2 = await client.get("/api/v1/table", headers={"If-None-Match": '"1"'})
    assert r2.status == 304
    rt.publish_states({"openai/gpt-4o": State.OPEN})
    r3 = await client.get("/api/v1/table", headers={"If-None-Match": '"1"'})
    assert r3.status == 200 and (await r3.json())["version"] == 2


async def test_long_poll_returns_at_once_when_newer_exists(client: Client, rt: FakeRuntime) -> None:
    rt.publish_states({"openai/gpt-4o": State.OPEN})
    r = await client.get("/api/v1/table", params={"after": "1", "wait": "30"})
    assert r.status == 200 and (await r.json())["version"] == 2


async def test_long_poll_returns_within_50ms_of_a_new_version(client: Client, rt: FakeRuntime) -> None:
    loop = asyncio.get_running_loop()
    poll = asyncio.create_task(client.get("/api/v1/table", params={"after": "1", "wait": "10"}))
    await asyncio.sleep(0.05)  # let the request reach the server and start waiting (not a timing assertion)
    assert not poll.done()
    published = loop.time()
    rt.publish_states({"anthropic/claude-sonnet-4": State.WITHDRAWN})
    r = await poll
    elapsed = loop.time() - published
    assert r.status == 200 and (await r.json())["version"] == 2
    assert elapsed < 0.05, f"long-poll answered {elapsed * 1000:.1f} ms after publish"


async def test_long_poll_answers_304_at_the_deadline(client: Client) -> None:
    r = await client.get("/api/v1/table", params={"after": "1", "wait": "0.05"})
    assert r.status == 304 and r.headers["ETag"] == '"1"'


async def test_bad_parameters_are_422_naming_the_parameter(client: Client) -> None:
    for params, field in [
        ({"after": "x"}, "after"),
        ({"wait": "1000", "after": "1"}, "wait"),
        ({"after": "-1"}, "after"),
    ]:
        r = await client.get("/api/v1/table", params=params)
        assert r.status == 422
        assert (await r.json())["error"]["field"] == field
    r = await client.get("/api/v1/events", params={"type": "nope"})
    assert r.status == 422 and (await r.json())["error"]["field"] == "type"
    r = await client.get("/api/v1/uptime", params={"window": "2y"})
    assert r.status == 422 and (await r.json())["error"]["field"] == "window"


async def test_routes_and_one_route(client: Client) -> None:
    r = await client.get("/api/v1/routes")
    assert [x["route"] for x in (await r.json())["routes"]] == ["cheap", "frontier"]
    r = await client.get("/api/v1/routes/frontier")
    body = await r.json()
    assert body["primary"] == "anthropic/claude-sonnet-4" and body["entries"][0]["reason"]
    r = await client.get("/api/v1/routes/nope")
    assert r.status == 404 and (await r.json())["error"]["field"] == "route"


async def test_target_detail_includes_latest_observations_and_model_with_slash(client: Client, rt: FakeRuntime) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rt.store.add_observations(
        [Observation.failure("openrouter/meta/llama-3", ErrorClass.OVERLOADED, kind="completion", at=at, status=503)]
    )
    r = await client.get("/api/v1/targets/openrouter/meta/llama-3")
    assert r.status == 200
    body = await r.json()
    assert body["model"] == "meta/llama-3" and body["routes"] == ["cheap"]
    assert body["latest_observations"]["completion"]["error_class"] == "overloaded"
    assert body["health"]["window"]["calls"] == 10
    r = await client.get("/api/v1/targets/openai/nope")
    assert r.status == 404


async def test_providers_roll_up_target_states(client: Client, rt: FakeRuntime) -> None:
    rt.publish_states({"openai/gpt-4o": State.OPEN, "anthropic/claude-sonnet-4": State.WITHDRAWN})
    body = await (await client.get("/api/v1/providers")).json()
    status = {p["id"]: p["status"] for p in body["providers"]}
    assert status == {"openai": "partial_outage", "anthropic": "major_outage", "openrouter": "operational"}
    assert "sk-secret" not in str(body)


async def test_events_are_paginated_and_filtered(client: Client, rt: FakeRuntime) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rt.store.append_events(
        [Event(type="target.state_changed", at=at, subject="openai/gpt-4o", data={"n": i}) for i in range(5)]
    )
    rt.store.append_events([Event(type="route.primary_changed", at=at, subject="frontier")])
    page = await (await client.get("/api/v1/events", params={"after": "0", "limit": "2"})).json()
    assert [e["data"].get("n") for e in page["events"]] == [0, 1]
    page2 = await (await client.get("/api/v1/events", params={"after": str(page["next_after"]), "limit": "10"})).json()
    assert len(page2["events"]) == 4
    only = await (await client.get("/api/v1/events?type=route.primary_changed")).json()
    assert [e["type"] for e in only["events"]] == ["route.primary_changed"]


async def test_uptime_reports_per_target_and_provider(client: Client, rt: FakeRuntime) -> None:
    at = rt.clock.wall()
    obs = [Observation.success("openai/gpt-4o", kind="completion", at=at, latency_s=0.1) for _ in range(3)]
    obs.append(Observation.failure("openai/gpt-4o", ErrorClass.SERVER_ERROR, kind="completion", at=at))
    rt.store.add_observations(obs)
    body = await (await client.get("/api/v1/uptime", params={"window": "24h", "provider": "openai"})).json()
    assert body["window_s"] == 86400
    [p] = body["providers"]
    assert p["provider"] == "openai" and p["uptime_pct"] == 75.0
    r = await client.get("/api/v1/uptime", params={"target": "x/y"})
    assert r.status == 422 and (await r.json())["error"]["field"] == "target"


async def test_drain_and_undrain_need_admin_and_reach_the_runtime(client: Client, rt: FakeRuntime) -> None:
    url = "/api/v1/targets/openai/gpt-4o/drain"
    assert (await client.post(url)).status == 401
    assert (await client.post(url, headers=READ)).status == 403
    r = await client.post(url, json={"reason": "maintenance", "until": "2026-01-02T00:00:00Z"}, headers=ADMIN)
    assert r.status == 200
    body = await r.json()
    assert body == {"action": "drain", "target": "openai/gpt-4o", "provider": None, "actor": "ops", "table_version": 2}
    assert rt.calls[-1][1]["until"] == datetime(2026, 1, 2, tzinfo=UTC)
    r = await client.post("/api/v1/targets/openai/gpt-4o/undrain", headers=ADMIN)
    assert r.status == 200 and rt.calls[-1][0] == "undrain"
    r = await client.post("/api/v1/providers/openai/drain", json={"reason": "x"}, headers=ADMIN)
    assert r.status == 200 and rt.calls[-1][1]["provider"] == "openai"
    r = await client.post("/api/v1/providers/nope/drain", headers=ADMIN)
    assert r.status == 404


async def test_drain_body_errors_name_the_field(client: Client) -> None:
    url = "/api/v1/targets/openai/gpt-4o/drain"
    r = await client.post(url, data=b"{nope", headers=ADMIN)
    assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_json"
    r = await client.post(url, json={"reason": "x", "color": "red"}, headers=ADMIN)
    assert r.status == 422 and (await r.json())["error"]["field"] == "color"
    r = await client.post(url, json={"until": "tomorrow"}, headers=ADMIN)
    assert r.status == 422 and (await r.json())["error"]["field"] == "until"


async def test_config_reload_reports_config_errors_with_field(client: Client, rt: FakeRuntime) -> None:
    r = await client.post("/api/v1/config/reload", headers=ADMIN)
    assert r.status == 200 and (await r.json())["config_hash"] == rt.config.hash
    rt.reload_error = ConfigError("turnout.yaml", "routes.frontier.targets[0]", "unknown target 'x/y'")
    r = await client.post("/api/v1/config/reload", headers=ADMIN)
    err = (await r.json())["error"]
    assert r.status == 422 and err["field"] == "routes.frontier.targets[0]"


async def test_wrong_token_is_401_even_on_public_reads_and_never_echoed(client: Client) -> None:
    r = await client.get("/api/v1/table", headers={"Authorization": "Bearer guess-1234"})
    assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert "guess-1234" not in await r.text()
    r = await client.get("/api/v1/table", headers={"Authorization": "Basic abc"})
    assert r.status == 401


async def test_private_reads_need_a_token(tmp_path: Any) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from controlplane.api.routes import install
    from tests.fakes import FakeClock

    rt = FakeRuntime(tmp_path, FakeClock(), public_read=False)
    app = web.Application()
    install(app, rt)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        assert (await c.get("/api/v1/table")).status == 401
        assert (await c.get("/api/v1/table", headers=READ)).status == 200
        assert (await c.get("/api/v1/table", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})).status == 200
        assert (await c.get("/healthz")).status == 200


async def test_health_and_readiness(client: Client) -> None:
    assert await (await client.get("/healthz")).json() == {"status": "ok", "version": __version__}
    r = await client.get("/readyz")
    assert r.status == 200 and (await r.json())["checks"] == {"store": True, "table": True}


async def test_summary_has_statuspage_shape(client: Client, rt: FakeRuntime) -> None:
    rt.health.since["openai/gpt-4o"] = "2026-01-01T00:00:00Z"
    rt.publish_states({"openai/gpt-4o": State.OPEN})
    body = await (await client.get("/api/v2/summary.json")).json()
    assert set(body) == {"page", "status", "components", "incidents", "scheduled_maintenances"}
    assert body["status"]["indicator"] == "minor"
    groups = {c["name"]: c for c in body["components"] if c["group"]}
    assert groups["openai"]["status"] == "partial_outage" and len(groups["openai"]["components"]) == 2
    [incident] = body["incidents"]
    assert incident["name"] == "openai/gpt-4o is open" and incident["started_at"] == "2026-01-01T00:00:00Z"


async def test_openapi_lists_every_route(client: Client) -> None:
    doc = await (await client.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    assert {"/api/v1/table", "/api/v2/summary.json", "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver"} <= set(
        doc["paths"]
    )
    assert doc["paths"]["/api/v1/webhooks"]["post"]["security"] == [{"bearer": []}]


async def test_long_poll_on_the_real_publisher_returns_within_50ms(client: Client, rt: FakeRuntime) -> None:
    from controlplane.publisher import TablePublisher
    from tests.api.fakes import make_table

    publisher = TablePublisher(make_table(rt.config, 5))
    rt.table_source = publisher  # type: ignore[assignment]
    loop = asyncio.get_running_loop()
    polls = [asyncio.create_task(client.get("/api/v1/table", params={"after": "5", "wait": "10"})) for _ in range(5)]
    await asyncio.sleep(0.05)  # let the requests start waiting (not a timing assertion)
    published = loop.time()
    publisher.publish(make_table(rt.config, 6, {"openai/gpt-4o": State.OPEN}))
    for r in await asyncio.gather(*polls):
        assert r.status == 200 and (await r.json())["version"] == 6
    assert loop.time() - published < 0.05
