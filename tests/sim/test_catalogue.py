"""One case per row of the simulator fault catalogue (provider-semantics.md §7): the simulator answers with
the documented status, headers and body, and the matching adapter classifies it as §6 says."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import orjson
import pytest

from adapters.registry import get_adapter
from adapters.sim import FAULTS, Simulator
from controlplane.domain import Classification, ErrorClass
from controlplane.errors import ProviderError
from tests.sim.conftest import MODEL, call, family_of

E = ErrorClass


@dataclass(frozen=True)
class Case:
    fault: str
    provider: str = "oa"
    stream: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)  # dotted path → expected value
    headers: dict[str, str] = field(default_factory=dict)  # header → expected value ("*" = present)
    no_headers: tuple[str, ...] = ()
    contains: tuple[bytes, ...] = ()  # raw body fragments
    cls: ErrorClass | None = E.OK  # what the adapter concludes (None: not judged here)
    retry_after_s: float | None = None
    check: Callable[[Classification], None] | None = None
    label: str = ""

    @property
    def id(self) -> str:
        return self.label or f"{self.fault}@{self.provider}{'-stream' if self.stream else ''}"


OA_RL = {
    "retry-after": "2",
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "2s",
}

CASES: list[Case] = [
    # transport and timing faults answer normally to this plain check where they act on streams only;
    # their transport behaviour is asserted in test_transport.py
    Case(
        "NET-4",
        "ds",
        stream=True,
        params={"seconds": 0.03, "interval": 0.01},
        contains=(b": keep-alive\n\n", b"data: [DONE]"),
    ),
    Case(
        "NET-4", "orr", stream=True, params={"seconds": 0.02, "interval": 0.01}, contains=(b": OPENROUTER PROCESSING",)
    ),
    Case("NET-4", "an", stream=True, params={"seconds": 0.02, "interval": 0.01}, contains=(b"event: ping",)),
    Case("NET-6", stream=True, params={"rate": 500}, contains=(b"data: [DONE]",)),
    Case("NET-7", stream=True, cls=E.BAD_RESPONSE, contains=(b'"content":"Hello "',)),
    Case("NET-7", "an", stream=True, cls=E.BAD_RESPONSE, contains=(b"content_block_delta",)),
    Case("NET-7", "gg", stream=True, cls=E.BAD_RESPONSE, contains=(b'"text":"Hello "',)),
    Case("NET-7", cls=E.BAD_RESPONSE),
    Case("NET-8", stream=True, cls=E.BAD_RESPONSE, contains=(b'data: {"choices":[{"delta":{"content":"ab',)),
    Case("NET-8", "an", stream=True, cls=E.BAD_RESPONSE),
    Case("NET-8", "gg", stream=True, cls=E.BAD_RESPONSE),
    Case("NET-8", cls=E.BAD_RESPONSE),
    Case("NET-9", status=502, headers={"content-type": "text/html"}, contains=(b"Bad Gateway",), cls=E.BAD_RESPONSE),
    Case(
        "NET-9",
        params={"status": 200},
        headers={"content-type": "text/html"},
        contains=(b"<html>",),
        cls=E.BAD_RESPONSE,
        label="NET-9@oa-200",
    ),
    Case("NET-10", body={"choices.0.message.content": "", "choices.0.finish_reason": None}, cls=E.BAD_RESPONSE),
    Case("EMPTY-BODY", "an", cls=E.BAD_RESPONSE),
    Case("BIG", params={"mb": 10}, contains=(b"x" * 1024,), cls=None, check=None),
    Case("LATENCY", params={"seconds": 0.01}),
    Case("TTFT", stream=True, params={"seconds": 0.01}),
    Case("POL", body={"choices.0.finish_reason": "content_filter"}, cls=None),
    Case("POL", "an", body={"stop_reason": "refusal"}, cls=None),
    Case(
        "POL", "gg", body={"promptFeedback.blockReason": "SAFETY"}, no_headers=("x-ratelimit-limit-requests",), cls=None
    ),
    Case(
        "HDR-RA",
        params={"hint": "ms"},
        status=429,
        headers={"retry-after-ms": "1500"},
        cls=E.RATE_LIMITED,
        retry_after_s=1.5,
        label="HDR-RA-ms",
    ),
    Case(
        "HDR-RA",
        params={"hint": "seconds"},
        status=429,
        headers={"retry-after": "3"},
        cls=E.RATE_LIMITED,
        retry_after_s=3,
        label="HDR-RA-s",
    ),
    Case(
        "HDR-RA",
        params={"hint": "date"},
        status=429,
        headers={"retry-after": "*"},
        cls=E.RATE_LIMITED,
        retry_after_s=3,
        label="HDR-RA-date",
    ),
    Case(
        "HDR-RA",
        "an",
        params={"hint": "no_retry", "status": 529},
        status=529,
        headers={"x-should-retry": "false"},
        cls=E.OVERLOADED,
        label="HDR-RA-no-retry",
        check=lambda c: _eq(c.should_retry, False),
    ),
    Case(
        "OA-401", status=401, body={"error.code": "invalid_api_key", "error.type": "invalid_request_error"}, cls=E.AUTH
    ),
    Case(
        "OA-403R",
        status=403,
        body={"error.code": "unsupported_country_region_territory", "error.type": "request_forbidden"},
        cls=E.REGION_BLOCKED,
    ),
    Case(
        "OA-404",
        status=404,
        body={"error.code": "model_not_found"},
        contains=(b"The model `gpt-x` does not exist",),
        cls=E.MODEL_GONE,
    ),
    Case(
        "OA-429R",
        status=429,
        body={"error.code": "rate_limit_exceeded", "error.type": "requests"},
        headers=OA_RL,
        cls=E.RATE_LIMITED,
        retry_after_s=2,
    ),
    Case(
        "OA-429S",
        status=429,
        body={"error.code": "slow_down", "error.type": "rate_limit_error"},
        headers={"retry-after": "5"},
        cls=E.RATE_LIMITED,
    ),
    Case(
        "OA-429Q",
        status=429,
        body={"error.code": "insufficient_quota", "error.type": "insufficient_quota"},
        no_headers=("retry-after",),
        cls=E.QUOTA_EXHAUSTED,
    ),
    Case(
        "OA-429Q",
        params={"code": "credit_balance_exhausted"},
        status=429,
        body={"error.code": "credit_balance_exhausted"},
        cls=E.QUOTA_EXHAUSTED,
        label="OA-429Q-credit",
    ),
    Case(
        "OA-503",
        status=503,
        body={"error.code": "server_is_overloaded", "error.type": "service_unavailable_error"},
        headers={"retry-after": "1"},
        cls=E.OVERLOADED,
    ),
    Case("OA-500", status=500, body={"error.type": "server_error", "error.code": None}, cls=E.SERVER_ERROR),
    Case(
        "OA-CTX",
        status=400,
        body={"error.code": "context_length_exceeded", "error.param": "messages"},
        cls=E.CLIENT_ERROR,
        check=lambda c: _eq(c.context_exceeded, True),
    ),
    Case("OA-MID", stream=True, contains=(b'"type":"server_error"',), no_headers=(), cls=E.SERVER_ERROR),
    Case("OA-HDR", headers={"x-ratelimit-reset-tokens": "6m0s", "x-ratelimit-remaining-tokens": "150000"}),
    Case(
        "AZ-429",
        status=429,
        body={"error.code": "429"},
        headers={"retry-after": "6", "retry-after-ms": "6000"},
        cls=E.RATE_LIMITED,
        retry_after_s=6,
    ),
    Case("AZ-404", status=404, body={"error.code": "DeploymentNotFound"}, cls=E.MODEL_GONE),
    Case(
        "AZ-CF",
        status=400,
        body={"error.code": "content_filter", "error.innererror.code": "ResponsibleAIPolicyViolation"},
        cls=E.CLIENT_ERROR,
    ),
    Case(
        "AZ-NEG",
        headers={
            "x-ratelimit-limit-tokens": "-1",
            "x-ratelimit-remaining-tokens": "-1",
            "x-ratelimit-reset-tokens": "0",
        },
    ),
    Case(
        "DS-402",
        "ds",
        status=402,
        body={"error.message": "Insufficient Balance"},
        no_headers=("x-ratelimit-limit-requests",),
        cls=E.QUOTA_EXHAUSTED,
    ),
    Case(
        "DS-503",
        "ds",
        status=503,
        body={"error.message": "Server overloaded, please try again later."},
        cls=E.OVERLOADED,
    ),
    Case("GQ-498", status=498, body={"error.code": "capacity_exceeded"}, cls=E.OVERLOADED),
    Case("TG-403", status=403, contains=(b"max_new_tokens",), cls=E.CLIENT_ERROR),
    Case("OR-402", "orr", status=402, body={"error.code": 402}, cls=E.QUOTA_EXHAUSTED),
    Case("OR-503", "orr", status=503, body={"error.code": 503}, headers={"retry-after": "30"}, cls=E.OVERLOADED),
    Case(
        "OR-MID",
        "orr",
        stream=True,
        contains=(b": OPENROUTER PROCESSING", b'"finish_reason":"error"', b"data: [DONE]"),
        cls=E.SERVER_ERROR,
    ),
    Case(
        "VL-ERR", "lc", status=400, body={"object": "error", "type": "BadRequestError", "code": 400}, cls=E.CLIENT_ERROR
    ),
    Case(
        "OL-404",
        "lc",
        status=404,
        body={"error.type": "not_found_error", "error.code": None},
        contains=(b'model \\"local\\" not found',),
        cls=E.MODEL_GONE,
    ),
    Case("AN-401", "an", status=401, body={"type": "error", "error.type": "authentication_error"}, cls=E.AUTH),
    Case("AN-402", "an", status=402, body={"error.type": "billing_error"}, cls=E.QUOTA_EXHAUSTED),
    Case("AN-403", "an", status=403, body={"error.type": "permission_error"}, cls=E.AUTH),
    Case(
        "AN-403G",
        "an",
        status=403,
        body={"error.type": "forbidden", "error.message": "Request not allowed"},
        cls=E.REGION_BLOCKED,
    ),
    Case(
        "AN-404",
        "an",
        status=404,
        body={"error.type": "not_found_error", "error.message": "model: claude-x"},
        cls=E.MODEL_GONE,
    ),
    Case(
        "AN-429",
        "an",
        status=429,
        body={"error.type": "rate_limit_error"},
        headers={
            "retry-after": "12",
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:12Z",
        },
        cls=E.RATE_LIMITED,
        retry_after_s=12,
    ),
    Case(
        "AN-429S",
        "an",
        status=429,
        body={"error.details.error_code": "enforced_spend_limit_reached"},
        no_headers=("retry-after",),
        cls=E.QUOTA_EXHAUSTED,
    ),
    Case(
        "AN-529",
        "an",
        status=529,
        body={"error.type": "overloaded_error", "error.message": "Overloaded"},
        cls=E.OVERLOADED,
    ),
    Case("AN-500", "an", status=500, body={"error.type": "api_error"}, cls=E.SERVER_ERROR),
    Case("AN-504", "an", status=504, body={"error.type": "timeout_error"}, cls=E.TIMEOUT),
    Case(
        "AN-CTX",
        "an",
        status=400,
        body={
            "error.type": "invalid_request_error",
            "error.message": "prompt is too long: 207791 tokens > 200000 maximum",
        },
        cls=E.CLIENT_ERROR,
    ),
    Case(
        "AN-MID",
        "an",
        stream=True,
        contains=(b"event: message_start", b"event: ping", b"event: error", b'"type":"overloaded_error"'),
        cls=E.OVERLOADED,
    ),
    Case(
        "GG-400L",
        "gg",
        status=400,
        body={
            "error.status": "FAILED_PRECONDITION",
            "error.message": "User location is not supported for the API use.",
        },
        cls=E.REGION_BLOCKED,
    ),
    Case(
        "GG-400K",
        "gg",
        status=400,
        body={"error.status": "INVALID_ARGUMENT", "error.details.0.reason": "API_KEY_INVALID"},
        cls=E.AUTH,
    ),
    Case("GG-404", "gg", status=404, body={"error.status": "NOT_FOUND"}, cls=E.MODEL_GONE),
    Case("GG-402", "gg", status=402, body={"error.status": "RESOURCE_EXHAUSTED"}, cls=E.QUOTA_EXHAUSTED),
    Case(
        "GG-429M",
        "gg",
        status=429,
        body={
            "error.details.0.violations.0.quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "error.details.1.retryDelay": "26s",
        },
        no_headers=("retry-after", "x-ratelimit-limit-requests"),
        cls=E.RATE_LIMITED,
        retry_after_s=26,
    ),
    Case(
        "GG-429D",
        "gg",
        status=429,
        body={"error.details.0.violations.0.quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"},
        cls=E.QUOTA_EXHAUSTED,
    ),
    Case("GG-500", "gg", status=500, body={"error.status": "INTERNAL"}, cls=E.SERVER_ERROR),
    Case(
        "GG-503",
        "gg",
        status=503,
        body={"error.status": "UNAVAILABLE", "error.message": "The model is overloaded. Please try again later."},
        cls=E.OVERLOADED,
    ),
    Case("GG-504", "gg", status=504, body={"error.status": "DEADLINE_EXCEEDED"}, cls=E.TIMEOUT),
    Case("GG-MID", "gg", stream=True, contains=(b'"status": "UNAVAILABLE"',), cls=E.OVERLOADED),
    Case(
        "VX-429",
        "gg",
        status=429,
        body={"error.status": "RESOURCE_EXHAUSTED", "error.errors.0.reason": "rateLimitExceeded"},
        cls=E.OVERLOADED,
    ),
    Case(
        "LC-LOAD",
        "lc",
        status=503,
        body={"error.type": "unavailable_error", "error.message": "Loading model"},
        cls=E.CONNECT,
    ),
]
# Rows whose behaviour is not a single answer; each has its own test (named here so the coverage check holds).
ELSEWHERE = {
    "NET-1": "test_transport.py::test_refused_closes_only_that_providers_listener",
    "NET-2": "test_transport.py::test_reset_*",
    "NET-3": "test_transport.py::test_hang_*",
    "NET-5": "test_transport.py::test_stall_after_three_chunks",
    "CAT-1": "test_catalogue.py::test_catalogue_drift_and_anthropic_pagination",
    "ST-1": "test_admin.py::test_status_pages_follow_status_faults",
    "ST-2": "test_admin.py::test_status_pages_follow_status_faults",
    "ST-3": "test_admin.py::test_status_pages_follow_status_faults",
    **{
        fid: "test_cloud_catalogue.py::test_cloud_rows_answer_and_classify_as_documented"
        for fid in FAULTS
        if fid.startswith(("BR-", "VX-"))
    },
}


def test_every_catalogue_row_has_a_case() -> None:
    covered = {c.fault for c in CASES} | set(ELSEWHERE)
    assert covered == set(FAULTS), f"missing: {set(FAULTS) - covered}; unknown: {covered - set(FAULTS)}"


def _eq(a: object, b: object) -> None:
    assert a == b, f"{a!r} != {b!r}"


def _at(doc: Any, path: str) -> Any:
    node = doc
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _judge(
    family: str, status: int, headers: dict[str, str], body: bytes, *, stream: bool, model: str, now: datetime
) -> Classification:
    """What the adapter concludes about this answer, the way the data plane would read it."""
    adapter = get_adapter(family)
    c = adapter.classify(status, headers, body, now=now)  # type: ignore[call-arg]
    if not c.ok or not 200 <= status < 300:
        return c
    if stream:
        translator = adapter.stream_translator(model=model)
        items = translator.feed(body) + translator.close()
        errors = [i.classification for i in items if i.kind == "error" and i.classification is not None]
        return errors[0] if errors else c
    try:
        adapter.parse_response(body, model=model)
    except ProviderError as exc:
        return exc.classification
    return c


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_fault_answers_as_documented_and_classifies(
    sim: Simulator, http: aiohttp.ClientSession, case: Case
) -> None:
    sim.set_fault(case.provider, case.fault, count=1, **case.params)
    status, headers, body = await call(http, sim, case.provider, stream=case.stream)

    assert status == case.status, body[:300]
    for name, want in case.headers.items():
        assert name in headers, f"missing header {name}"
        if want != "*":
            assert headers[name].split(";")[0] == want, f"{name}: {headers[name]!r}"
    for name in case.no_headers:
        assert name not in headers
    for fragment in case.contains:
        assert fragment in body, body[:600]
    if case.body:
        doc = orjson.loads(body)
        for path, want in case.body.items():
            assert _at(doc, path) == want, f"{path} in {doc}"
    assert sim.stats()["providers"][case.provider]["faults"] == {case.fault: 1}
    if case.fault == "BIG":
        assert len(body) > 10 * 1024 * 1024

    got = _judge(
        family_of(case.provider),
        status,
        headers,
        body,
        stream=case.stream,
        model=MODEL[case.provider],
        now=sim.clock.wall(),
    )
    if case.cls is not None:
        assert got.error_class is case.cls, got
    if case.retry_after_s is not None:
        assert got.retry_after_s == pytest.approx(case.retry_after_s, abs=0.01), got
    if case.check is not None:
        case.check(got)

    # count=1: the next call is clean again
    status, _, _ = await call(http, sim, case.provider, stream=case.stream)
    assert status == 200


@pytest.mark.integration
async def test_policy_outcomes_reach_the_client_translated(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """POL is a 200 the caller gets back (outcome C), carried as an OpenAI finish_reason after translation."""
    for provider in ("oa", "an", "gg"):
        sim.set_fault(provider, "POL", count=1)
        status, headers, body = await call(http, sim, provider)
        assert status == 200
        adapter = get_adapter(family_of(provider))
        try:
            doc = adapter.parse_response(body, model=MODEL[provider])
        except ProviderError as exc:
            assert exc.classification.error_class is E.CLIENT_ERROR, exc.classification
        else:
            assert doc["choices"][0]["finish_reason"] == "content_filter", doc


@pytest.mark.integration
async def test_draining_headers_step_to_zero_headroom(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("oa", "OA-HDR", count=4)
    ratios = []
    for _ in range(4):
        _, headers, _ = await call(http, sim, "oa")
        room = get_adapter("openai").headroom(headers, sim.clock.wall())
        assert room is not None
        ratios.append(room.ratio)
    assert ratios == sorted(ratios, reverse=True) and ratios[-1] == 0.0, ratios
    assert headers["x-ratelimit-reset-tokens"] == "6m0s"


@pytest.mark.integration
async def test_azure_placeholder_headers_mean_unknown_headroom(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("oa", "AZ-NEG", count=1)
    _, headers, _ = await call(http, sim, "oa")
    room = get_adapter("openai").headroom(headers, sim.clock.wall())
    assert room is None or room.dimension != "tokens"


@pytest.mark.integration
async def test_catalogue_drift_and_anthropic_pagination(sim: Simulator, http: aiohttp.ClientSession) -> None:
    auth = {"Authorization": "Bearer test-key"}
    async with http.get(sim.base_url("oa") + "/models", headers=auth) as r:
        assert [m["id"] for m in (await r.json())["data"]] == ["gpt-x", "gpt-y"]
    sim.set_fault("oa", "CAT-1", model="gpt-x")
    async with http.get(sim.base_url("oa") + "/models", headers=auth) as r:
        assert [m["id"] for m in (await r.json())["data"]] == ["gpt-y"]
    status, _, _ = await call(http, sim, "oa")  # drift is catalogue-only: inference still answers
    assert status == 200

    an = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}
    sim.set_fault("an", "CAT-1", model="claude-y")
    async with http.get(sim.base_url("an") + "/v1/models", headers=an) as r:
        page = await r.json()
    assert [m["id"] for m in page["data"]] == ["claude-x"] and page["has_more"] is False
    sim.clear_faults("an")
    sim.set_fault("an", "catalogue_drift", duration=10)  # provider-wide drift: empty, paged by 1
    async with http.get(sim.base_url("an") + "/v1/models", headers=an) as r:
        assert (await r.json())["data"] == []
    sim.clear_faults("an")
    async with http.get(sim.base_url("an") + "/v1/models", params={"limit": "1"}, headers=an) as r:
        page = await r.json()
    assert page["has_more"] is True and page["first_id"] == page["last_id"] == "claude-x"
    async with http.get(
        sim.base_url("an") + "/v1/models", params={"limit": "1", "after_id": "claude-x"}, headers=an
    ) as r:
        page = await r.json()
    assert page["has_more"] is False and page["last_id"] == "claude-y"


@pytest.mark.integration
async def test_model_gone_drops_the_model_from_every_catalogue(sim: Simulator, http: aiohttp.ClientSession) -> None:
    for provider, url, key, items, name_field in (
        ("oa", "/models", {"Authorization": "Bearer test-key"}, "data", "id"),
        ("an", "/v1/models", {"x-api-key": "test-key"}, "data", "id"),
        ("gg", "/models", {"x-goog-api-key": "test-key"}, "models", "name"),
    ):
        sim.set_fault(provider, "model_gone", model=MODEL[provider])
        async with http.get(sim.base_url(provider) + url, headers=key) as r:
            names = [m[name_field] for m in (await r.json())[items]]
        assert all(MODEL[provider] not in n for n in names) and names, names
        status, _, _ = await call(http, sim, provider)
        assert status == 404
