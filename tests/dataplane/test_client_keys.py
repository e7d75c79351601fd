"""Client keys on the data plane, driven with the official SDKs: 401 / 403 / 429 in the client API's own shape,
rate-limit headers, a retry that succeeds once the clock moves, budgets from the cost accounting, attribution.

The data plane runs in front of the provider simulator with a real store (SQLite) and the key gate reading it, as an
all-in-one `turnout serve` does; keys are made through the key store the control API uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anthropic
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from adapters.sim import Simulator
from controlplane.decisions import Decision, DecisionLog, summarise
from controlplane.keys import KeySpec, KeyStore
from controlplane.keys.store import ring_source
from controlplane.store import Store
from dataplane.http.messages import App, AppKey, Request, Response
from dataplane.keys import Caller, KeyGate, Refusal, anthropic_refusal
from dataplane.proxy import DATA_STATE, build_data_app
from tests.dataplane.conftest import parse_with_key, turnout_yaml
from tests.dataplane.helpers import Rt, StaticTables, make_table
from tests.fakes import FakeClock
from tests.support import serve_app

pytestmark = pytest.mark.integration

MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
START = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
GATE: AppKey[KeyGate] = AppKey("test_gate")


@dataclass
class Keyed:
    sim: Simulator
    rt: Rt
    keys: KeyStore
    clock: FakeClock
    url: str
    app: App

    def client(self, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url, api_key=key, max_retries=0)

    def gate(self) -> KeyGate:
        return self.app[DATA_STATE].keys


@pytest.fixture
async def keyed(sim: Simulator, tmp_path: Path) -> AsyncIterator[Keyed]:
    clock = FakeClock(START)
    # No periodic ring reads: each test says when the ring is read (changes made here are announced in process).
    cfg = parse_with_key(turnout_yaml(sim, "auth: {data: {refresh_interval: 1h}}"))
    store = Store(f"sqlite:///{tmp_path / 'keys.db'}", clock)
    rt = Rt(cfg, StaticTables(make_table(cfg)), clock=clock, decision_engine=store.engine)
    read, subscribe = ring_source(store.engine, clock)  # as turnout serve composes an all-in-one gate
    app = build_data_app(rt, keys=KeyGate(read, clock, lambda: cfg.auth.data, subscribe=subscribe))
    runner, port = await serve_app(app)
    yield Keyed(sim, rt, KeyStore(store.engine, clock), clock, f"http://127.0.0.1:{port}/v1", app)
    await runner.cleanup()
    store.close()


async def test_anonymous_until_the_first_key_then_401_without_one(keyed: Keyed) -> None:
    anon = keyed.client("unused")
    assert (await anon.chat.completions.create(model="main", messages=MSG)).choices
    _, key = keyed.keys.create(KeySpec(name="team-a"))
    with pytest.raises(openai.AuthenticationError) as err:
        await anon.chat.completions.create(model="main", messages=MSG)
    assert err.value.code == "invalid_api_key" and err.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        await anon.models.list()
    assert (await keyed.client(key).chat.completions.create(model="main", messages=MSG)).choices


async def test_revoked_and_rotated_keys_are_refused_at_once(keyed: Keyed) -> None:
    record, key = keyed.keys.create(KeySpec(name="team-a"))
    client = keyed.client(key)
    await client.chat.completions.create(model="main", messages=MSG)
    rotated = keyed.keys.rotate(record.id)
    assert rotated is not None
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(model="main", messages=MSG)
    new = keyed.client(rotated[1])
    await new.chat.completions.create(model="main", messages=MSG)
    keyed.keys.revoke(record.id)
    with pytest.raises(openai.AuthenticationError) as err:
        await new.chat.completions.create(model="main", messages=MSG)
    assert rotated[1] not in str(err.value.body)


async def test_a_route_the_key_may_not_use_is_403_and_models_lists_only_its_routes(keyed: Keyed) -> None:
    _, key = keyed.keys.create(KeySpec(name="team-a", routes=["main"]))
    client = keyed.client(key)
    before = keyed.sim.requests("oa")
    with pytest.raises(openai.PermissionDeniedError) as err:
        await client.chat.completions.create(model="cross", messages=MSG)
    assert err.value.code == "model_not_allowed" and "main" in err.value.message
    assert keyed.sim.requests("oa") == before  # refused before any upstream attempt
    assert [m.id for m in (await client.models.list()).data] == ["main"]


async def test_requests_per_minute_429_with_headers_then_the_retry_succeeds(keyed: Keyed) -> None:
    _, key = keyed.keys.create(KeySpec(name="team-a", rpm=2))
    client = keyed.client(key)
    raw = await client.chat.completions.with_raw_response.create(model="main", messages=MSG)
    assert raw.headers["x-ratelimit-limit-requests"] == "2"
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    assert raw.headers["x-ratelimit-reset-requests"] == "30s"
    await client.chat.completions.create(model="main", messages=MSG, stream=False)
    upstream = keyed.sim.requests("oa")
    with pytest.raises(openai.RateLimitError) as err:
        await client.chat.completions.create(model="main", messages=MSG)
    headers = err.value.response.headers
    assert headers["retry-after"] == "30" and headers["x-ratelimit-remaining-requests"] == "0"
    assert err.value.code == "rate_limit_exceeded"
    # The key's own limit is not the provider's health: no upstream call, no observation of a rate limit.
    assert keyed.sim.requests("oa") == upstream
    assert "rate_limited" not in keyed.rt.sink.classes("oa/gpt-x")
    refusals = keyed.rt.metrics.registry.get_sample_value(
        "turnout_dataplane_key_refusals_total", {"reason": "requests"}
    )
    assert refusals == 1
    keyed.clock.advance(30)
    assert (await client.chat.completions.create(model="main", messages=MSG)).choices


async def test_tokens_per_minute_are_charged_from_the_answers_usage(keyed: Keyed) -> None:
    _, key = keyed.keys.create(KeySpec(name="team-a", tpm=1))
    client = keyed.client(key)
    await client.chat.completions.create(model="main", messages=MSG)  # any answer uses more than one token
    with pytest.raises(openai.RateLimitError) as err:
        await client.chat.completions.create(model="main", messages=MSG)
    assert err.value.body["type"] == "tokens"  # type: ignore[index]
    assert int(err.value.response.headers["retry-after"]) >= 60


async def test_a_spent_budget_is_refused_as_insufficient_quota_and_attributed(keyed: Keyed) -> None:
    record, key = keyed.keys.create(KeySpec(name="team-a", budget_usd=1e-9, budget_period="day"))
    client = keyed.client(key)
    async for _ in await client.chat.completions.create(model="main", messages=MSG, stream=True):
        pass
    with pytest.raises(openai.RateLimitError) as err:
        await client.chat.completions.create(model="main", messages=MSG)
    assert err.value.code == "insufficient_quota" and err.value.body["type"] == "insufficient_quota"  # type: ignore[index]
    log = keyed.app[DATA_STATE].decisions
    assert log is not None
    await log.flush()
    use = keyed.keys.use(record)
    assert use.requests == 1 and use.cost_usd > 1e-9  # the refused request cost nothing and is not a decision
    by_key = summarise(keyed.keys.engine, "key", START - timedelta(hours=1))
    assert [(r["key"], r["requests"]) for r in by_key] == [(record.id, 1)]
    # Another process reading the ring now sees the spend from the store.
    (ring_key,) = keyed.keys.ring().keys
    assert ring_key.spent_usd == pytest.approx(use.cost_usd)


async def test_an_expired_key_is_401(keyed: Keyed) -> None:
    _, key = keyed.keys.create(KeySpec(name="team-a", expires_at=START + timedelta(minutes=5)))
    client = keyed.client(key)
    await client.chat.completions.create(model="main", messages=MSG)
    keyed.clock.advance(300)
    with pytest.raises(openai.AuthenticationError) as err:
        await client.chat.completions.create(model="main", messages=MSG)
    assert "expired" in err.value.message


async def _messages_shape(request: Request) -> Response:
    """A stand-in Messages handler doing exactly what a client API handler does with the gate (identify, then admit),
    answering in Anthropic's shape: the refusals as the anthropic SDK sees them."""
    gate: KeyGate = request.app[GATE]
    caller = await gate.identify(request.headers)
    if isinstance(caller, Refusal):
        return anthropic_refusal(caller)
    assert isinstance(caller, Caller)
    admitted = gate.admit(caller, "main")
    if isinstance(admitted, Refusal):
        return anthropic_refusal(admitted)
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "main", "content": [],
            "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}  # fmt: skip
    return Response(orjson.dumps(body), headers=admitted.headers)


async def test_refusals_in_the_anthropic_shape_with_the_anthropic_sdk(keyed: Keyed) -> None:
    """The gate's refusals through anthropic_refusal as the anthropic SDK sees them (x-api-key header included), with
    a spend the gate reads from the store; the real Messages and count_tokens handlers are driven the same way in
    tests/dataplane/clients/test_client_keys_apis.py."""
    app = App(max_body_bytes=lambda: 1 << 20)
    app[GATE] = keyed.gate()
    app.add_route("POST", "/v1/messages", _messages_shape)
    runner, port = await serve_app(app)
    try:
        base = f"http://127.0.0.1:{port}"
        _, key = keyed.keys.create(KeySpec(name="team-a", rpm=1))
        _, other = keyed.keys.create(KeySpec(name="team-b", routes=["cross"]))
        _, broke = keyed.keys.create(KeySpec(name="team-c", budget_usd=1e-9))
        keyed.gate().load(keyed.keys.ring())
        args = {"model": "main", "max_tokens": 5, "messages": MSG}

        def client(k: str) -> anthropic.AsyncAnthropic:
            return anthropic.AsyncAnthropic(base_url=base, api_key=k, max_retries=0)

        with pytest.raises(anthropic.AuthenticationError) as auth:
            await client("sk-ant-unused").messages.create(**args)  # type: ignore[call-overload]
        assert auth.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
        ok = await client(key).messages.with_raw_response.create(**args)  # type: ignore[call-overload]
        assert ok.headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(anthropic.RateLimitError) as limited:
            await client(key).messages.create(**args)  # type: ignore[call-overload]
        assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
        assert limited.value.response.headers["retry-after"] == "60"
        with pytest.raises(anthropic.PermissionDeniedError) as denied:
            await client(other).messages.create(**args)  # type: ignore[call-overload]
        assert denied.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
        # team-c's spend lands in the store (as the decision log writes it) and the gate reads it with the ring.
        log = DecisionLog(keyed.keys.engine, keyed.clock, retention_s=86400)
        broke_id = broke.split("_")[1]
        log.record(Decision(keyed.clock.wall(), "main", "oa/gpt-x", "ok", 200, False, [], 1, 1, 0.5, key_id=broke_id))
        await log.flush()
        keyed.gate().load(keyed.keys.ring())
        with pytest.raises(anthropic.RateLimitError) as quota:
            await client(broke).messages.create(**args)  # type: ignore[call-overload]
        assert quota.value.body["error"]["type"] == "billing_error"  # type: ignore[index]
    finally:
        await runner.cleanup()
