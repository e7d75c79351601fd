"""Each probe kind: what it observes, how it classifies failures, and that it never lets a fault escape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import probes
from adapters.base import CompletionProbeResult
from controlplane.config import PROBE_KINDS_KNOWN, CompletionProbeConfig, ProviderConfig
from controlplane.config_loader import parse_config
from controlplane.domain import Classification, ErrorClass, Headroom, Scope, TargetRef
from controlplane.errors import ProviderError
from probes import PROBE_KINDS, ProbeContext, ProbeSkipped, catalogue, completion, count_tokens, health, status_page
from probes.budget import SpendBudget, estimate_cost
from tests.fakes import FakeClock
from tests.probes.scripted import ScriptedAdapter


def _provider(adapter: str = "openai", base: str = "https://api.example.com/v1", **kw: Any) -> ProviderConfig:
    cfg = {
        "id": "acme",
        "adapter": adapter,
        "base_url": base,
        "models": [
            {"name": "m1", "price": {"input": 2.0, "output": 8.0}},
            {"name": "r1", "reasoning": True},
            {"name": "m2"},
        ],
        **kw,
    }
    return parse_config(json.dumps({"providers": [cfg]}), env={}).providers[0]


def _ctx(
    session: Any, adapter: Any, provider: ProviderConfig, clock: FakeClock, model: str = "m1", **kw: Any
) -> ProbeContext:
    return ProbeContext(
        session=session, adapter=adapter, provider=provider, model=provider.model(model), clock=clock, timeout=2.0, **kw
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _serve(routes: dict[str, web.Response | Any]) -> TestServer:
    app = web.Application()
    for path, answer in routes.items():

        async def handler(request: web.Request, answer: Any = answer) -> web.StreamResponse:
            response: web.StreamResponse = answer() if callable(answer) else answer
            return response

        app.router.add_route("*", path, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def test_registry_covers_every_configurable_kind() -> None:
    assert tuple(PROBE_KINDS) == PROBE_KINDS_KNOWN
    assert all(name in dir(probes) for name in probes.__all__)


# -- catalogue ------------------------------------------------------------------------------------
async def test_catalogue_reports_each_target_and_a_dropped_model_as_model_gone(clock: FakeClock) -> None:
    p = _provider()
    targets = (TargetRef("acme", "m1"), TargetRef("acme", "m2"))
    out = await catalogue.probe(
        targets[0], _ctx(None, ScriptedAdapter(models=["M1", "other"]), p, clock, targets=targets)
    )
    assert [(o.target, o.error_class) for o in out] == [("acme/m1", ErrorClass.OK), ("acme/m2", ErrorClass.MODEL_GONE)]
    assert out[1].code == "catalogue_drop" and out[0].headroom == 0.5 and out[0].kind == "catalogue"


def test_catalogue_matching_tolerates_gemini_prefix_and_ollama_latest() -> None:
    assert catalogue.listed("models/gemini-2.5-pro", {"gemini-2.5-pro"})
    assert catalogue.listed("llama3", {"llama3:latest"})
    assert not catalogue.listed("llama3:8b", {"llama3:latest"})


async def test_catalogue_failure_reaches_every_target_with_its_scope(clock: FakeClock) -> None:
    err = ProviderError(
        "acme", None, Classification(ErrorClass.AUTH, Scope.CREDENTIAL, status=401, code="invalid_api_key")
    )
    targets = (TargetRef("acme", "m1"), TargetRef("acme", "m2"))
    out = await catalogue.probe(
        targets[0], _ctx(None, ScriptedAdapter(models=err), _provider(), clock, targets=targets)
    )
    assert {(o.error_class, o.scope, o.status) for o in out} == {(ErrorClass.AUTH, Scope.CREDENTIAL, 401)} and len(
        out
    ) == 2


async def test_an_empty_catalogue_is_a_bad_response_not_a_withdrawal(clock: FakeClock) -> None:
    out = await catalogue.probe(TargetRef("acme", "m1"), _ctx(None, ScriptedAdapter(models=[]), _provider(), clock))
    assert [o.error_class for o in out] == [ErrorClass.BAD_RESPONSE]


# -- completion -----------------------------------------------------------------------------------
async def test_completion_reports_latency_ttft_throughput_headroom_and_spend(clock: FakeClock) -> None:
    result = CompletionProbeResult(
        Classification(ErrorClass.OK, status=200),
        latency_s=0.8,
        ttft_s=0.3,
        tokens_per_s=40.0,
        headroom=Headroom(0.25, "tokens"),
        output_tokens=5,
        input_tokens=20,
    )
    budget = SpendBudget(clock)
    adapter = ScriptedAdapter(completions=[result])
    [obs] = await completion.probe(TargetRef("acme", "m1"), _ctx(None, adapter, _provider(), clock, budget=budget))
    assert (obs.error_class, obs.latency_s, obs.ttft_s, obs.tokens_per_s, obs.headroom) == (
        ErrorClass.OK,
        0.8,
        0.3,
        40.0,
        0.25,
    )
    assert obs.extra["cost_usd"] == pytest.approx(estimate_cost(_provider().models[0].price, 20, 5))
    assert budget.spent("acme") == pytest.approx(obs.extra["cost_usd"])  # the worst-case reservation was settled
    assert adapter.calls == [("probe_completion", ("m1", 16))]


async def test_reasoning_models_get_the_larger_token_budget(clock: FakeClock) -> None:
    adapter = ScriptedAdapter()
    await completion.probe(
        TargetRef("acme", "r1"),
        _ctx(None, adapter, _provider(), clock, model="r1", completion=CompletionProbeConfig(reasoning_max_tokens=256)),
    )
    assert adapter.calls == [("probe_completion", ("r1", 256))]


async def test_completion_is_skipped_once_the_daily_budget_is_spent(clock: FakeClock) -> None:
    p = _provider(probe_budget_usd_per_day=0.0003)
    budget = SpendBudget(clock)
    ctx = _ctx(None, ScriptedAdapter(), p, clock, budget=budget)
    runs = 0
    with pytest.raises(ProbeSkipped) as skipped:
        for _ in range(100):
            await completion.probe(TargetRef("acme", "m1"), ctx)
            runs += 1
    assert skipped.value.reason == "budget" and 1 <= runs < 100
    clock.advance(86400)  # a new UTC day: the budget is fresh
    assert len(await completion.probe(TargetRef("acme", "m1"), ctx)) == 1


async def test_free_models_never_hit_the_budget(clock: FakeClock) -> None:
    ctx = _ctx(
        None, ScriptedAdapter(), _provider(probe_budget_usd_per_day=0.0), clock, model="m2", budget=SpendBudget(clock)
    )
    for _ in range(5):
        assert len(await completion.probe(TargetRef("acme", "m2"), ctx)) == 1


async def test_a_failed_completion_is_classified_not_raised(clock: FakeClock) -> None:
    bad = CompletionProbeResult(
        Classification(ErrorClass.OVERLOADED, status=529, retry_after_s=3.0, detail="Overloaded")
    )
    [obs] = await completion.probe(
        TargetRef("acme", "m1"), _ctx(None, ScriptedAdapter(completions=[bad]), _provider(), clock)
    )
    assert (obs.error_class, obs.status, obs.retry_after_s) == (ErrorClass.OVERLOADED, 529, 3.0)


# -- status page ----------------------------------------------------------------------------------
SUMMARY = {
    "page": {"id": "x"},
    "status": {"indicator": "minor", "description": "Minor"},
    "components": [{"name": "API", "status": "partial_outage"}, {"name": "Chat Completions", "status": "operational"}],
    "incidents": [
        {
            "name": "Elevated errors",
            "status": "investigating",
            "impact": "major",
            "components": [{"name": "Playground"}],
        }
    ],
}


def test_status_assessment_uses_the_configured_components() -> None:
    assert status_page.assess(SUMMARY, ["Chat Completions"]) == (0, "operational")
    assert status_page.assess(SUMMARY, ["API"]) == (2, "API: partial_outage")
    sev, why = status_page.assess(SUMMARY, [])
    assert sev == 2  # everything counts when nothing is named


async def test_status_page_degradation_becomes_a_hint_never_a_failure(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    server = await _serve(
        {
            "/summary.json": web.json_response(SUMMARY),
            "/down.json": web.Response(status=503),
            "/html.json": web.Response(text="<html>maintenance</html>"),
        }
    )
    try:
        p = _provider(status_page=str(server.make_url("/summary.json")), status_components=["API"])
        out = await status_page.probe(
            TargetRef("acme", "m1"),
            _ctx(session, None, p, clock, targets=(TargetRef("acme", "m1"), TargetRef("acme", "m2"))),
        )
        assert [o.error_class for o in out] == [ErrorClass.OK, ErrorClass.OK]
        assert out[0].headroom == status_page.HEADROOM_HINT[2] and "partial_outage" in out[0].detail
        for path in ("/down.json", "/html.json"):  # a broken feed leaves targets alone
            p2 = _provider(status_page=str(server.make_url(path)))
            assert await status_page.probe(TargetRef("acme", "m1"), _ctx(session, None, p2, clock)) == []
    finally:
        await server.close()


async def test_status_page_without_url_is_skipped(clock: FakeClock) -> None:
    with pytest.raises(ProbeSkipped):
        await status_page.probe(TargetRef("acme", "m1"), _ctx(None, None, _provider(), clock))


# -- health (local servers) -----------------------------------------------------------------------
async def test_health_probe_ok_loading_and_refused(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    loading = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
    server = await _serve(
        {"/up/health": web.json_response({"status": "ok"}), "/loading/health": web.json_response(loading, status=503)}
    )
    try:
        up = _provider(base=str(server.make_url("/up/v1")))
        assert health.is_local(up) and health.health_url(up).endswith("/up/health")
        [ok] = await health.probe(TargetRef("acme", "m1"), _ctx(session, None, up, clock))
        assert ok.ok and ok.status == 200
        [lo] = await health.probe(
            TargetRef("acme", "m1"), _ctx(session, None, _provider(base=str(server.make_url("/loading/v1"))), clock)
        )
        assert (lo.error_class, lo.code, lo.status) == (ErrorClass.CONNECT, "not_ready", 503) and "loading" in lo.detail
    finally:
        await server.close()
    [gone] = await health.probe(TargetRef("acme", "m1"), _ctx(session, None, up, clock))  # server closed: refused
    assert gone.error_class is ErrorClass.CONNECT


def test_health_applies_to_local_servers_only() -> None:
    assert not probes.applies("health", _provider())
    assert probes.applies("health", _provider(base="http://10.0.0.5:8000/v1"))
    assert probes.applies("health", _provider(base="https://gpu.example.com/v1", flavor="vllm"))
    assert health.health_url(_provider(base="http://localhost:11434/v1")) == "http://localhost:11434/api/version"


# -- count_tokens ---------------------------------------------------------------------------------
async def test_count_tokens_for_anthropic_and_gemini(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    def counted() -> web.Response:
        return web.json_response({"input_tokens": 14})

    server = await _serve(
        {
            "/v1/messages/count_tokens": counted,
            "/models/{m}:countTokens": web.json_response({"totalTokens": 9}),
            "/v1/missing": web.Response(status=404),
        }
    )
    try:
        base = str(server.make_url("")).rstrip("/")
        adapter = ScriptedAdapter(base=base)
        [a] = await count_tokens.probe(
            TargetRef("acme", "m1"), _ctx(session, adapter, _provider("anthropic", base), clock)
        )
        assert a.ok and a.extra == {"input_tokens": 14} and a.kind == "count_tokens"
        [g] = await count_tokens.probe(
            TargetRef("acme", "m1"), _ctx(session, adapter, _provider("gemini", base), clock)
        )
        assert g.ok and g.extra == {"input_tokens": 9}
        [bad] = await count_tokens.probe(
            TargetRef("acme", "m1"),
            _ctx(session, ScriptedAdapter(base=base + "/v1/missing"), _provider("anthropic", base), clock),
        )
        assert bad.error_class is ErrorClass.MODEL_GONE and bad.status == 404
    finally:
        await server.close()


async def test_count_tokens_does_not_apply_to_openai_compatible_providers(clock: FakeClock) -> None:
    assert not probes.applies("count_tokens", _provider())
    with pytest.raises(ProbeSkipped):
        await count_tokens.probe(TargetRef("acme", "m1"), _ctx(None, ScriptedAdapter(), _provider(), clock))
