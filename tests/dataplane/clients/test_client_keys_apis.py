"""Client keys on Responses, Messages, count_tokens and embeddings, driven with the official SDKs: no key and a
revoked key → 401, a route the key may not use → 403, over rpm → 429 with retry-after and x-ratelimit-* and a retry
that then succeeds, a spent budget → refused; each in the API's own error shape (OpenAI's for Responses and
embeddings, Anthropic's for Messages and count_tokens), and the key id on the decision record of that API.

The data plane runs in front of the simulator with a real store (SQLite) and the key gate reading it, as an
all-in-one `turnout serve` does; keys are made through the key store the control API uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from adapters.sim import Simulator
from controlplane.decisions import summarise
from controlplane.keys import KeySpec, KeyStore
from controlplane.keys.store import ring_source
from controlplane.store import Store
from dataplane.http.messages import App
from dataplane.keys import KeyGate
from dataplane.proxy import DATA_STATE, build_data_app
from tests.dataplane.clients.conftest import turnout_yaml
from tests.dataplane.conftest import parse_with_key
from tests.dataplane.helpers import Rt, StaticTables, make_table
from tests.fakes import FakeClock
from tests.support import serve_app

pytestmark = pytest.mark.integration

START = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
APIS = ("responses", "embeddings", "messages", "count_tokens")
MODEL = {"responses": "r-native", "embeddings": "e-openai", "messages": "r-anthropic", "count_tokens": "r-anthropic"}
UPSTREAM = {"responses": "oa", "embeddings": "oa", "messages": "an", "count_tokens": "an"}
ANTHROPIC_SHAPE = {"messages", "count_tokens"}
MSGS: list[Any] = [{"role": "user", "content": "hello"}]
StatusError = openai.APIStatusError | anthropic.APIStatusError


@dataclass
class Keyed:
    sim: Simulator
    rt: Rt
    keys: KeyStore
    clock: FakeClock
    root: str
    app: App

    async def call(self, api: str, key: str, *, model: str | None = None) -> Any:
        """One request of `api` with `key`, through the official SDK; the raw response (headers readable)."""
        m = model or MODEL[api]
        if api in ANTHROPIC_SHAPE:
            an = anthropic.AsyncAnthropic(base_url=self.root, api_key=key, max_retries=0)
            async with an:
                if api == "messages":
                    return await an.messages.with_raw_response.create(model=m, max_tokens=5, messages=MSGS)
                return await an.messages.with_raw_response.count_tokens(model=m, messages=MSGS)
        oa = openai.AsyncOpenAI(base_url=f"{self.root}/v1", api_key=key, max_retries=0)
        async with oa:
            if api == "responses":
                return await oa.responses.with_raw_response.create(model=m, input="hello")
            return await oa.embeddings.with_raw_response.create(model=m, input="hello")


@pytest.fixture
async def keyed(sim: Simulator, tmp_path: Path) -> AsyncIterator[Keyed]:
    clock = FakeClock(START)
    cfg = parse_with_key(turnout_yaml(sim, "auth: {data: {refresh_interval: 1h}}"))
    store = Store(f"sqlite:///{tmp_path / 'keys.db'}", clock)
    rt = Rt(cfg, StaticTables(make_table(cfg)), clock=clock, decision_engine=store.engine)
    read, subscribe = ring_source(store.engine, clock)  # as turnout serve composes an all-in-one gate
    app = build_data_app(rt, keys=KeyGate(read, clock, lambda: cfg.auth.data, subscribe=subscribe))
    runner, port = await serve_app(app)
    yield Keyed(sim, rt, KeyStore(store.engine, clock), clock, f"http://127.0.0.1:{port}", app)
    await runner.cleanup()
    store.close()


def _kind(api: str, exc: StatusError) -> str:
    """The refusal as the client's API names it: OpenAI's `code`, Anthropic's `error.type`."""
    body = exc.body
    assert isinstance(body, dict), body
    if api in ANTHROPIC_SHAPE:
        assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}, body
        return str(body["error"]["type"])
    assert isinstance(exc, openai.APIStatusError)
    assert set(body) >= {"message", "type", "code"}, body  # the SDK unwraps OpenAI's {"error": {...}}
    return str(exc.code)


async def _refused(keyed: Keyed, api: str, key: str, error: str) -> StatusError:
    """The SDK's exception `error` (AuthenticationError, PermissionDeniedError, RateLimitError) for one call."""
    try:
        await keyed.call(api, key)
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        assert type(exc) is getattr(anthropic if api in ANTHROPIC_SHAPE else openai, error), exc
        return exc
    raise AssertionError(f"{api}: answered, expected {error}")


@pytest.mark.parametrize("api", APIS)
async def test_no_key_and_a_revoked_key_are_401_in_the_apis_shape(keyed: Keyed, api: str) -> None:
    assert (await keyed.call(api, "unused")).http_response.status_code == 200  # anonymous until the first key
    record, key = keyed.keys.create(KeySpec(name="team-a"))
    before = keyed.sim.requests(UPSTREAM[api])
    err = await _refused(keyed, api, "unused", "AuthenticationError")
    assert _kind(api, err) == ("authentication_error" if api in ANTHROPIC_SHAPE else "invalid_api_key")
    assert (await keyed.call(api, key)).http_response.status_code == 200
    keyed.keys.revoke(record.id)
    err = await _refused(keyed, api, key, "AuthenticationError")
    assert key not in str(err.body)
    assert keyed.sim.requests(UPSTREAM[api]) == before + 1  # refusals never reach the provider


@pytest.mark.parametrize("api", APIS)
async def test_a_route_the_key_may_not_use_is_403_before_any_upstream_call(keyed: Keyed, api: str) -> None:
    _, key = keyed.keys.create(KeySpec(name="team-a", routes=["r-compat"]))
    before = keyed.sim.requests(UPSTREAM[api])
    err = await _refused(keyed, api, key, "PermissionDeniedError")
    assert _kind(api, err) == ("permission_error" if api in ANTHROPIC_SHAPE else "model_not_allowed")
    assert "r-compat" in str(err.body)  # says which routes it may use
    assert keyed.sim.requests(UPSTREAM[api]) == before


@pytest.mark.parametrize("api", APIS)
async def test_over_rpm_is_429_with_the_headers_then_the_retry_succeeds(keyed: Keyed, api: str) -> None:
    _, key = keyed.keys.create(KeySpec(name="team-a", rpm=2))
    ok = await keyed.call(api, key)
    assert ok.headers["x-ratelimit-limit-requests"] == "2"
    assert ok.headers["x-ratelimit-remaining-requests"] == "1"
    assert ok.headers["x-ratelimit-reset-requests"] == "30s"
    await keyed.call(api, key)
    upstream = keyed.sim.requests(UPSTREAM[api])
    err = await _refused(keyed, api, key, "RateLimitError")
    headers = err.response.headers
    assert headers["retry-after"] == "30" and headers["x-ratelimit-remaining-requests"] == "0"
    assert _kind(api, err) == ("rate_limit_error" if api in ANTHROPIC_SHAPE else "rate_limit_exceeded")
    assert keyed.sim.requests(UPSTREAM[api]) == upstream  # the key's limit is not the provider's health
    refusals = keyed.rt.metrics.registry.get_sample_value(
        "turnout_dataplane_key_refusals_total", {"reason": "requests"}
    )
    assert refusals == 1
    keyed.clock.advance(30)
    assert (await keyed.call(api, key)).http_response.status_code == 200


@pytest.mark.parametrize("api", APIS)
async def test_a_spent_budget_is_refused_and_the_spend_is_the_keys(keyed: Keyed, api: str) -> None:
    record, key = keyed.keys.create(KeySpec(name="team-a", budget_usd=1e-9, budget_period="day"))
    spender = "messages" if api == "count_tokens" else api  # counting tokens costs nothing: spend with Messages
    await keyed.call(spender, key)
    err = await _refused(keyed, api, key, "RateLimitError")
    assert _kind(api, err) == ("billing_error" if api in ANTHROPIC_SHAPE else "insufficient_quota")
    log = keyed.app[DATA_STATE].decisions
    assert log is not None
    await log.flush()
    use = keyed.keys.use(record)
    assert use.requests == 1 and use.cost_usd > 1e-9  # settled from the answer's usage; the refusal is no decision
    by_key = summarise(keyed.keys.engine, "key", START - timedelta(hours=1))
    assert [(r["key"], r["requests"]) for r in by_key] == [(record.id, 1)]
    by_api = summarise(keyed.keys.engine, "api", START - timedelta(hours=1))
    assert [r["api"] for r in by_api] == [spender]


async def test_tokens_settle_against_the_keys_tpm_when_a_responses_request_ends(keyed: Keyed) -> None:
    _, key = keyed.keys.create(KeySpec(name="team-a", tpm=1))
    await keyed.call("responses", key)  # any answer uses more than one token: the bucket goes into debt
    with pytest.raises(openai.RateLimitError) as err:
        await keyed.call("responses", key)
    assert err.value.body["type"] == "tokens"  # type: ignore[index]
    assert int(err.value.response.headers["retry-after"]) >= 60


async def test_a_stored_response_asks_for_a_key_too(keyed: Keyed) -> None:
    keyed.keys.create(KeySpec(name="team-a"))
    oa = openai.AsyncOpenAI(base_url=f"{keyed.root}/v1", api_key="unused", max_retries=0)
    async with oa:
        with pytest.raises(openai.AuthenticationError):
            await oa.responses.retrieve("resp_x")
