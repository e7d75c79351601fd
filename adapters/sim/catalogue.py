"""The simulator's fault catalogue (provider-semantics.md §7): every fault id, what it does, the exact error
answer it produces, how §6 classifies it, and the friendly aliases that pick the family-appropriate variant.

Longer than any other module on purpose: one table, a FaultSpec per §7 row with the exact answer it renders,
kept together so a row and provider-semantics.md §7 can be read side by side.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from enum import StrEnum
from typing import Any

from controlplane.domain import ErrorClass

__all__ = [
    "Behaviour",
    "ErrorResponse",
    "RenderContext",
    "FaultSpec",
    "FAULTS",
    "ALIASES",
    "resolve_fault",
    "rfc3339",
    "oa_body",
    "an_body",
    "gg_body",
]


class Behaviour(StrEnum):
    """How a fault acts; the provider server switches on this."""

    ERROR = "error"  # an HTTP error answer (status, headers, body) instead of the completion
    REFUSED = "refused"  # the provider's listener is closed: connection refused
    RESET = "reset"  # TCP RST (before the answer; streams: after 2 chunks)
    HANG = "hang"  # headers held (for `seconds`, else until the fault clears)
    KEEPALIVE = "keepalive"  # queued: keep-alives every `interval` for `seconds`, then tokens
    STALL = "stall"  # stream stops after 3 chunks and holds the connection open
    TRUNCATED = "truncated"  # no terminator (stream) / cut JSON (plain)
    MALFORMED = "malformed"  # a broken JSON chunk (stream) / broken JSON body (plain)
    MID_ERROR = "mid_error"  # 2 chunks, then the family's in-stream error
    EMPTY = "empty"  # 200 with empty content, no finish reason
    POLICY = "policy"  # 200 with the family's policy outcome (content_filter / refusal / blockReason)
    LATENCY = "latency"  # modifier: extra delay before headers
    TTFT = "ttft"  # modifier: extra delay before the first token
    SLOW = "slow"  # modifier: decode at `rate` tokens/s
    DRAIN = "drain"  # modifier: rate-limit headers stepping to 0 remaining tokens
    NEG_HEADERS = "neg_headers"  # modifier: Azure -1/0 placeholder headers
    CATALOGUE = "catalogue"  # the model leaves the catalogue (inference unaffected); Anthropic pages of 1
    HEALTH_LOADING = "health_loading"  # llama.cpp `/health` 503 loading (and inference 503)
    STATUS = "status"  # status page content (ST-1/2/3)


# Behaviours that combine with whatever else fires on the same request.
MODIFIERS = frozenset({Behaviour.LATENCY, Behaviour.TTFT, Behaviour.SLOW, Behaviour.DRAIN, Behaviour.NEG_HEADERS})


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class RenderContext:
    model: str
    now: datetime  # injected wall clock
    family: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One catalogue row."""

    id: str
    behaviour: Behaviour
    summary: str
    families: frozenset[str] | None = None  # None: any family
    expected: ErrorClass | None = None  # §6 class of the answer (None: transport/timing/status page)
    all_endpoints: bool = False  # also hits catalogue/health/count-tokens endpoints (auth, region)
    drops_model: bool = False  # the model leaves the catalogue while active
    render: Callable[[RenderContext], ErrorResponse] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)  # every parameter the fault takes, with its default

    def applies_to(self, family: str) -> bool:
        return self.families is None or bool(self.families & _TAKES.get(family, frozenset({family})))

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise ValueError naming a parameter this fault does not take, or a value it cannot use."""
        for name, value in params.items():
            if name not in self.defaults:
                known = ", ".join(self.defaults) or "none"
                raise ValueError(f"fault {self.id} takes no parameter {name!r}; it takes: {known}")
            if (
                name in _NUMERIC
                and value is not None
                and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0)
            ):
                raise ValueError(f"{self.id} parameter {name!r} must be a non-negative number, got {value!r}")
        if self.render is not None:
            self.render(RenderContext("m", datetime(2026, 1, 1, tzinfo=UTC), "openai", params))  # e.g. HDR-RA's hint


# Vertex serves Google's and Anthropic's models: platform errors in Google's shape, model errors in Anthropic's,
# so a vertex provider takes both families' faults.
_TAKES: dict[str, frozenset[str]] = {"vertex": frozenset({"vertex", "gemini", "anthropic"})}

_NUMERIC = frozenset({"seconds", "interval", "rate", "steps", "status", "mb"})


def rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(obj: object) -> bytes:
    return json.dumps(obj).encode()


def oa_body(type_: str | None, code: str | None, message: str, param: str | None = None) -> bytes:
    return _json({"error": {"message": message, "type": type_, "param": param, "code": code}})


def an_body(type_: str, message: str, **extra: Any) -> bytes:
    return _json({"type": "error", "error": {"type": type_, "message": message, **extra}, "request_id": "req_sim"})


def gg_body(status: int, rpc: str, message: str, details: list[dict[str, Any]] | None = None, **extra: Any) -> bytes:
    err: dict[str, Any] = {"code": status, "message": message, "status": rpc}
    if details is not None:
        err["details"] = details
    err.update(extra)
    return _json({"error": err})


def _oa(
    status: int, type_: str | None, code: str | None, msg: str, param: str | None = None, **headers: str
) -> Callable[[RenderContext], ErrorResponse]:
    return lambda c: ErrorResponse(status, oa_body(type_, code, msg.format(model=c.model), param), _h(headers))


def _an(status: int, type_: str, msg: str, **headers: str) -> Callable[[RenderContext], ErrorResponse]:
    return lambda c: ErrorResponse(status, an_body(type_, msg.format(model=c.model)), _h(headers))


def _gg(
    status: int, rpc: str, msg: str, details: list[dict[str, Any]] | None = None, **extra: Any
) -> Callable[[RenderContext], ErrorResponse]:
    return lambda c: ErrorResponse(status, gg_body(status, rpc, msg.format(model=c.model), details, **extra))


def _raw(status: int, obj: dict[str, Any], **headers: str) -> Callable[[RenderContext], ErrorResponse]:
    return lambda c: ErrorResponse(status, _json(obj), _h(headers))


def _h(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in headers.items()}


def _oa_429r(c: RenderContext) -> ErrorResponse:
    msg = "Rate limit reached for requests on model {m}: Limit 500, Used 500, Requested 1. Please try again in 2s."
    headers = {"retry-after": "2"}
    for dim, limit in (("requests", "500"), ("tokens", "30000")):
        headers |= {
            f"x-ratelimit-limit-{dim}": limit,
            f"x-ratelimit-remaining-{dim}": "0",
            f"x-ratelimit-reset-{dim}": "2s",
        }
    return ErrorResponse(429, oa_body("requests", "rate_limit_exceeded", msg.format(m=c.model)), headers)


def _oa_429q(c: RenderContext) -> ErrorResponse:
    code = str(c.params.get("code", "insufficient_quota"))
    msg = "You exceeded your current quota, please check your plan and billing details."
    return ErrorResponse(429, oa_body("insufficient_quota", code, msg))


def _an_429(c: RenderContext) -> ErrorResponse:
    reset = rfc3339(c.now + timedelta(seconds=12))
    headers = {"retry-after": "12"}
    for dim, limit in (("requests", "50"), ("tokens", "40000"), ("input-tokens", "30000"), ("output-tokens", "8000")):
        headers |= {
            f"anthropic-ratelimit-{dim}-limit": limit,
            f"anthropic-ratelimit-{dim}-remaining": "0",
            f"anthropic-ratelimit-{dim}-reset": reset,
        }
    msg = "This request would exceed the rate limit for your organization of 50 requests per minute."
    return ErrorResponse(429, an_body("rate_limit_error", msg), headers)


def _an_429s(c: RenderContext) -> ErrorResponse:
    msg = "You have reached your specified workspace API usage limits."
    return ErrorResponse(429, an_body("rate_limit_error", msg, details={"error_code": "enforced_spend_limit_reached"}))


def _gg_429(quota_id: str) -> Callable[[RenderContext], ErrorResponse]:
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": "{model}"},
                    "quotaValue": "15",
                }
            ],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"},
    ]

    def render(c: RenderContext) -> ErrorResponse:
        filled = json.loads(json.dumps(details).replace("{model}", c.model))
        msg = "You exceeded your current quota, please check your plan and billing details."
        return ErrorResponse(429, gg_body(429, "RESOURCE_EXHAUSTED", msg, filled))

    return render


def _hdr_ra(c: RenderContext) -> ErrorResponse:
    """A 429 (or 503) in the family's own shape carrying one kind of retry hint (`hint` param)."""
    status = int(c.params.get("status", 429))
    hint = str(c.params.get("hint", "seconds"))
    hints = {
        "ms": {"retry-after-ms": "1500"},
        "seconds": {"retry-after": "3"},
        "date": {"retry-after": format_datetime(c.now + timedelta(seconds=3), usegmt=True)},
        "no_retry": {"x-should-retry": "false"},
    }
    if hint not in hints:
        raise ValueError(f"HDR-RA hint must be one of {', '.join(hints)}, got {hint!r}")
    busy = status != 429
    if c.family == "anthropic":
        body = an_body("overloaded_error", "Overloaded") if busy else an_body("rate_limit_error", "Rate limited")
    elif c.family == "gemini":
        body = gg_body(status, "UNAVAILABLE" if busy else "RESOURCE_EXHAUSTED", "Try again later.")
    else:
        body = (
            oa_body("service_unavailable_error", "server_is_overloaded", "Overloaded")
            if busy
            else oa_body("requests", "rate_limit_exceeded", "Rate limit reached.")
        )
    return ErrorResponse(status, body, hints[hint])


def _html(c: RenderContext) -> ErrorResponse:
    status = int(c.params.get("status", 502))
    page = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>\n"
    return ErrorResponse(status, page.encode(), content_type="text/html")


def _huge(c: RenderContext) -> ErrorResponse:
    """A well-formed 200 far larger than any completion: readers must cap what they buffer."""
    size = int(float(c.params.get("mb", 10)) * 1024 * 1024)
    return ErrorResponse(
        200,
        b'{"choices":[{"index":0,"message":{"role":"assistant","content":"'
        + b"x" * size
        + b'"},"finish_reason":"stop"}]}',
    )


def _health_loading(c: RenderContext) -> ErrorResponse:
    return ErrorResponse(503, _json({"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}))


_OA, _AN, _GG = frozenset({"openai"}), frozenset({"anthropic"}), frozenset({"gemini"})
_BR = frozenset({"bedrock"})
_VX = frozenset({"vertex"})  # rows only a vertex provider answers (its bearer tokens, its IAM refusals)


def _br(status: int, exception: str, msg: str) -> Callable[[RenderContext], ErrorResponse]:
    """A Bedrock error: the exception name in `x-amzn-ErrorType`, only `{"message"}` in the body (§2.4)."""
    headers = {"x-amzn-ErrorType": f"{exception}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return lambda c: ErrorResponse(status, _json({"message": msg.format(model=c.model)}), headers)


E = ErrorClass
B = Behaviour

_ROWS: list[FaultSpec] = [
    # -- transport and timing (any family) --
    FaultSpec(
        "NET-1",
        B.REFUSED,
        "connection refused: the provider's listener is closed",
        expected=E.CONNECT,
        all_endpoints=True,
    ),
    FaultSpec("NET-2", B.RESET, "TCP reset (streams: after 2 chunks)", expected=E.CONNECT, all_endpoints=True),
    FaultSpec(
        "NET-3",
        B.HANG,
        "headers held `seconds` s (default: until the fault clears)",
        expected=E.TIMEOUT,
        all_endpoints=True,
        defaults={"seconds": None},
    ),
    FaultSpec(
        "NET-4",
        B.KEEPALIVE,
        "queued: keep-alives every `interval` s for `seconds` s, then tokens (`then: close`: close instead)",
        defaults={"seconds": 3.0, "interval": 1.0, "then": "tokens"},
    ),
    FaultSpec(
        "NET-5",
        B.STALL,
        "stream stalls after 3 chunks (preamble + 2 content chunks), connection held open",
        expected=E.TIMEOUT,
    ),
    FaultSpec("NET-6", B.SLOW, "slow decode at `rate` tokens/s", defaults={"rate": 2.0}),
    FaultSpec("NET-7", B.TRUNCATED, "stream ends without its terminator (plain: cut JSON)", expected=E.BAD_RESPONSE),
    FaultSpec(
        "NET-8", B.MALFORMED, 'malformed chunk `data: {"choices":[{"delta":{"content":"ab`', expected=E.BAD_RESPONSE
    ),
    FaultSpec(
        "NET-9",
        B.ERROR,
        "CDN page: `status` (502 or 200) text/html Bad gateway",
        expected=E.BAD_RESPONSE,
        render=_html,
        defaults={"status": 502},
    ),
    FaultSpec("NET-10", B.EMPTY, "200 with empty content and no finish reason", expected=E.BAD_RESPONSE),
    # Bad-input extras beyond §7 (issue 3, "Bad input"): nothing at all, and a 10 MB body.
    FaultSpec(
        "EMPTY-BODY",
        B.ERROR,
        "200 with an empty body",
        expected=E.BAD_RESPONSE,
        render=lambda c: ErrorResponse(200, b""),
    ),
    FaultSpec("BIG", B.ERROR, "200 with a `mb` MB JSON body (default 10)", render=_huge, defaults={"mb": 10}),
    FaultSpec("LATENCY", B.LATENCY, "extra `seconds` before response headers", defaults={"seconds": 1.0}),
    FaultSpec("TTFT", B.TTFT, "extra `seconds` before the first token", defaults={"seconds": 1.0}),
    FaultSpec(
        "POL", B.POLICY, "policy outcome: content_filter / refusal / blockReason SAFETY", expected=E.CLIENT_ERROR
    ),
    FaultSpec(
        "HDR-RA",
        B.ERROR,
        "429/503 (`status`) with one retry hint (`hint`: ms|seconds|date|no_retry)",
        expected=E.RATE_LIMITED,
        render=_hdr_ra,
        defaults={"hint": "seconds", "status": 429},
    ),
    FaultSpec("CAT-1", B.CATALOGUE, "model drops out of the catalogue (inference unaffected); Anthropic pages of 1"),
    FaultSpec(
        "LC-LOAD",
        B.HEALTH_LOADING,
        "llama.cpp loading: /health and inference 503 `unavailable_error`",
        all_endpoints=True,
        render=_health_loading,
    ),
    FaultSpec("ST-1", B.STATUS, "status page: indicator major, API component partial_outage, major incident"),
    FaultSpec(
        "ST-2", B.STATUS, "status feed down (`mode`: 503 or timeout); targets unaffected", defaults={"mode": "503"}
    ),
    FaultSpec("ST-3", B.STATUS, "Google incidents.json: entry without `end`, SERVICE_OUTAGE"),
    # -- OpenAI and Azure --
    FaultSpec(
        "OA-401",
        B.ERROR,
        "bad key",
        _OA,
        E.AUTH,
        True,
        render=_oa(
            401,
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        ),
    ),
    FaultSpec(
        "OA-403R",
        B.ERROR,
        "unsupported region",
        _OA,
        E.REGION_BLOCKED,
        True,
        render=_oa(
            403,
            "request_forbidden",
            "unsupported_country_region_territory",
            "Country, region, or territory not supported",
        ),
    ),
    FaultSpec(
        "OA-404",
        B.ERROR,
        "model gone (and off /models)",
        _OA,
        E.MODEL_GONE,
        drops_model=True,
        render=_oa(
            404,
            "invalid_request_error",
            "model_not_found",
            "The model `{model}` does not exist or you do not have access to it.",
        ),
    ),
    FaultSpec(
        "OA-429R", B.ERROR, "rate limit with retry-after and x-ratelimit headers", _OA, E.RATE_LIMITED, render=_oa_429r
    ),
    FaultSpec(
        "OA-429S",
        B.ERROR,
        "slow down",
        _OA,
        E.RATE_LIMITED,
        render=_oa(
            429,
            "rate_limit_error",
            "slow_down",
            "We're currently processing too many requests from your organization; please slow down.",
            retry_after="5",
        ),
    ),
    FaultSpec(
        "OA-429Q",
        B.ERROR,
        "quota exhausted (`code`: insufficient_quota | credit_balance_exhausted)",
        _OA,
        E.QUOTA_EXHAUSTED,
        render=_oa_429q,
        defaults={"code": "insufficient_quota"},
    ),
    FaultSpec(
        "OA-503",
        B.ERROR,
        "overloaded",
        _OA,
        E.OVERLOADED,
        render=_oa(
            503,
            "service_unavailable_error",
            "server_is_overloaded",
            "The server is overloaded, please try again later.",
            retry_after="1",
        ),
    ),
    FaultSpec(
        "OA-500",
        B.ERROR,
        "server error",
        _OA,
        E.SERVER_ERROR,
        render=_oa(
            500, "server_error", None, "The server had an error while processing your request. Sorry about that!"
        ),
    ),
    FaultSpec(
        "OA-CTX",
        B.ERROR,
        "context too long",
        _OA,
        E.CLIENT_ERROR,
        render=_oa(
            400,
            "invalid_request_error",
            "context_length_exceeded",
            "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
            param="messages",
        ),
    ),
    FaultSpec("OA-MID", B.MID_ERROR, "2 chunks, then an in-stream server_error", _OA, E.SERVER_ERROR),
    FaultSpec("OA-HDR", B.DRAIN, "x-ratelimit-remaining-tokens steps to 0, reset 6m0s", _OA, defaults={"steps": 4}),
    FaultSpec(
        "AZ-429",
        B.ERROR,
        "Azure throttle",
        _OA,
        E.RATE_LIMITED,
        render=_raw(
            429,
            {
                "error": {
                    "code": "429",
                    "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds.",
                }
            },
            retry_after="6",
            retry_after_ms="6000",
        ),
    ),
    FaultSpec(
        "AZ-404",
        B.ERROR,
        "deployment not found",
        _OA,
        E.MODEL_GONE,
        drops_model=True,
        render=_raw(
            404,
            {
                "error": {
                    "code": "DeploymentNotFound",
                    "message": "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
                }
            },
        ),
    ),
    FaultSpec(
        "AZ-CF",
        B.ERROR,
        "content filter",
        _OA,
        E.CLIENT_ERROR,
        render=_raw(
            400,
            {
                "error": {
                    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
                    "type": None,
                    "param": "prompt",
                    "code": "content_filter",
                    "status": 400,
                    "innererror": {
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": {"violence": {"filtered": True, "severity": "medium"}},
                    },
                }
            },
        ),
    ),
    FaultSpec("AZ-NEG", B.NEG_HEADERS, "placeholder rate headers -1 / 0", _OA),
    FaultSpec(
        "DS-402",
        B.ERROR,
        "DeepSeek insufficient balance",
        _OA,
        E.QUOTA_EXHAUSTED,
        render=_oa(402, "unknown_error", "invalid_request_error", "Insufficient Balance"),
    ),
    FaultSpec(
        "DS-503",
        B.ERROR,
        "DeepSeek overloaded",
        _OA,
        E.OVERLOADED,
        render=_oa(503, "unknown_error", "invalid_request_error", "Server overloaded, please try again later."),
    ),
    FaultSpec(
        "GQ-498",
        B.ERROR,
        "Groq flex capacity",
        _OA,
        E.OVERLOADED,
        render=_oa(
            498,
            "tokens",
            "capacity_exceeded",
            "Flex tier capacity exceeded. This is a transient error, please retry later.",
        ),
    ),
    FaultSpec(
        "TG-403",
        B.ERROR,
        "Together context (403)",
        _OA,
        E.CLIENT_ERROR,
        render=_oa(
            403,
            "invalid_request_error",
            None,
            "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 8193 (the maximum context length). Given: 8000 `inputs` tokens and 512 `max_new_tokens`",
        ),
    ),
    FaultSpec(
        "OR-402",
        B.ERROR,
        "OpenRouter credits",
        _OA,
        E.QUOTA_EXHAUSTED,
        render=_raw(
            402,
            {"error": {"code": 402, "message": "Insufficient credits. Add more using https://openrouter.ai/credits"}},
        ),
    ),
    FaultSpec(
        "OR-503",
        B.ERROR,
        "OpenRouter no provider",
        _OA,
        E.OVERLOADED,
        render=_raw(
            503,
            {"error": {"code": 503, "message": "No allowed providers are available for the selected model."}},
            Retry_After="30",
        ),
    ),
    FaultSpec(
        "OR-MID", B.MID_ERROR, "comments, 1 chunk, error chunk with finish_reason error, [DONE]", _OA, E.SERVER_ERROR
    ),
    FaultSpec(
        "VL-ERR",
        B.ERROR,
        "vLLM context error (MI body)",
        _OA,
        E.CLIENT_ERROR,
        render=_raw(
            400,
            {
                "object": "error",
                "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
        ),
    ),
    FaultSpec(
        "OL-404",
        B.ERROR,
        "Ollama model not pulled",
        _OA,
        E.MODEL_GONE,
        drops_model=True,
        render=_oa(404, "not_found_error", None, 'model "{model}" not found, try pulling it first'),
    ),
    # -- Anthropic --
    FaultSpec(
        "AN-401", B.ERROR, "bad key", _AN, E.AUTH, True, render=_an(401, "authentication_error", "invalid x-api-key")
    ),
    FaultSpec(
        "AN-402",
        B.ERROR,
        "billing",
        _AN,
        E.QUOTA_EXHAUSTED,
        render=_an(402, "billing_error", "Your credit balance is too low to access the Anthropic API."),
    ),
    FaultSpec(
        "AN-403",
        B.ERROR,
        "permission",
        _AN,
        E.AUTH,
        render=_an(403, "permission_error", "Your API key does not have permission to use the specified resource."),
    ),
    FaultSpec(
        "AN-403G",
        B.ERROR,
        "geo block at the edge",
        _AN,
        E.REGION_BLOCKED,
        True,
        render=_raw(403, {"error": {"type": "forbidden", "message": "Request not allowed"}}),
    ),
    FaultSpec(
        "AN-404",
        B.ERROR,
        "model retired (and off /v1/models)",
        _AN,
        E.MODEL_GONE,
        drops_model=True,
        render=_an(404, "not_found_error", "model: {model}"),
    ),
    FaultSpec(
        "AN-429",
        B.ERROR,
        "rate limit with retry-after and anthropic-ratelimit headers",
        _AN,
        E.RATE_LIMITED,
        render=_an_429,
    ),
    FaultSpec("AN-429S", B.ERROR, "spend cap (no retry-after)", _AN, E.QUOTA_EXHAUSTED, render=_an_429s),
    FaultSpec("AN-529", B.ERROR, "overloaded", _AN, E.OVERLOADED, render=_an(529, "overloaded_error", "Overloaded")),
    FaultSpec(
        "AN-500", B.ERROR, "internal", _AN, E.SERVER_ERROR, render=_an(500, "api_error", "Internal server error")
    ),
    FaultSpec("AN-504", B.ERROR, "timeout", _AN, E.TIMEOUT, render=_an(504, "timeout_error", "Request timeout")),
    FaultSpec(
        "AN-CTX",
        B.ERROR,
        "prompt too long",
        _AN,
        E.CLIENT_ERROR,
        render=_an(400, "invalid_request_error", "prompt is too long: 207791 tokens > 200000 maximum"),
    ),
    FaultSpec(
        "AN-MID", B.MID_ERROR, "message_start, ping, 2 deltas, then event: error overloaded_error", _AN, E.OVERLOADED
    ),
    # -- AWS Bedrock --
    FaultSpec(
        "BR-429",
        B.ERROR,
        "ThrottlingException",
        _BR,
        E.RATE_LIMITED,
        render=_br(429, "ThrottlingException", "Too many requests, please wait before trying again."),
    ),
    FaultSpec(
        "BR-429N",
        B.ERROR,
        "ModelNotReadyException",
        _BR,
        E.OVERLOADED,
        render=_br(429, "ModelNotReadyException", "The model is not ready to serve inference requests."),
    ),
    FaultSpec(
        "BR-503",
        B.ERROR,
        "ServiceUnavailableException",
        _BR,
        E.OVERLOADED,
        render=_br(503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
    ),
    FaultSpec(
        "BR-500",
        B.ERROR,
        "InternalServerException",
        _BR,
        E.SERVER_ERROR,
        render=_br(500, "InternalServerException", "The server encountered an internal error."),
    ),
    FaultSpec(
        "BR-424",
        B.ERROR,
        "ModelErrorException",
        _BR,
        E.SERVER_ERROR,
        render=_br(424, "ModelErrorException", "The model produced an error while processing the request."),
    ),
    FaultSpec(
        "BR-403",
        B.ERROR,
        "AccessDeniedException (no access to the model)",
        _BR,
        E.AUTH,
        render=_br(403, "AccessDeniedException", "You don't have access to the model with the specified model ID."),
    ),
    FaultSpec(
        "BR-403S",
        B.ERROR,
        "UnrecognizedClientException (bad key)",
        _BR,
        E.AUTH,
        True,
        render=_br(403, "UnrecognizedClientException", "The security token included in the request is invalid."),
    ),
    FaultSpec(
        "BR-400R",
        B.ERROR,
        "ValidationException: unsupported countries (and NOT_AVAILABLE in availability)",
        _BR,
        E.REGION_BLOCKED,
        render=_br(
            400,
            "ValidationException",
            "Access to Anthropic models is not allowed from unsupported countries, regions, or territories. Please refer to https://www.anthropic.com/supported-countries for more information on the countries and regions Anthropic currently supports.",
        ),
    ),
    FaultSpec(
        "BR-400G",
        B.ERROR,
        "ValidationException: model identifier invalid (and NOT_AUTHORIZED in availability)",
        _BR,
        E.MODEL_GONE,
        drops_model=True,
        render=_br(400, "ValidationException", "The provided model identifier is invalid."),
    ),
    FaultSpec(
        "BR-CTX",
        B.ERROR,
        "ValidationException: prompt too long",
        _BR,
        E.CLIENT_ERROR,
        render=_br(
            400,
            "ValidationException",
            "The model returned the following errors: prompt is too long: 210000 tokens > 200000 maximum",
        ),
    ),
    FaultSpec("BR-MID", B.MID_ERROR, "2 deltas, then a modelStreamErrorException event", _BR, E.SERVER_ERROR),
    # -- Gemini and Vertex --
    FaultSpec(
        "GG-400L",
        B.ERROR,
        "user location not supported",
        _GG,
        E.REGION_BLOCKED,
        True,
        render=_gg(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
    ),
    FaultSpec(
        "GG-400K",
        B.ERROR,
        "bad key",
        _GG,
        E.AUTH,
        True,
        render=_gg(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        ),
    ),
    FaultSpec(
        "GG-404",
        B.ERROR,
        "model not found (and off /models)",
        _GG,
        E.MODEL_GONE,
        drops_model=True,
        render=_gg(
            404,
            "NOT_FOUND",
            "models/{model} is not found for API version v1beta, or is not supported for generateContent.",
        ),
    ),
    FaultSpec(
        "GG-402",
        B.ERROR,
        "prepaid credit exhausted",
        _GG,
        E.QUOTA_EXHAUSTED,
        render=_gg(402, "RESOURCE_EXHAUSTED", "Your prepaid credits are exhausted."),
    ),
    FaultSpec(
        "GG-429M",
        B.ERROR,
        "per-minute quota with RetryInfo 26s",
        _GG,
        E.RATE_LIMITED,
        render=_gg_429("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
    ),
    FaultSpec(
        "GG-429D",
        B.ERROR,
        "per-day quota",
        _GG,
        E.QUOTA_EXHAUSTED,
        render=_gg_429("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
    ),
    FaultSpec(
        "GG-500",
        B.ERROR,
        "internal",
        _GG,
        E.SERVER_ERROR,
        render=_gg(
            500,
            "INTERNAL",
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        ),
    ),
    FaultSpec(
        "GG-503",
        B.ERROR,
        "overloaded",
        _GG,
        E.OVERLOADED,
        render=_gg(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    ),
    FaultSpec(
        "GG-504",
        B.ERROR,
        "deadline",
        _GG,
        E.TIMEOUT,
        render=_gg(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
    ),
    FaultSpec("GG-MID", B.MID_ERROR, "2 chunks, then GG-503 as raw multi-line JSON", _GG, E.OVERLOADED),
    FaultSpec(
        "VX-401",
        B.ERROR,
        "Vertex: bearer token invalid or expired",
        _VX,
        E.AUTH,
        True,
        render=_gg(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        ),
    ),
    FaultSpec(
        "VX-403",
        B.ERROR,
        "Vertex: permission denied on the model",
        _VX,
        E.AUTH,
        render=_gg(
            403,
            "PERMISSION_DENIED",
            "Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/projects/sim-project/locations/europe-west4/publishers/google/models/{model}' (or it may not exist).",
        ),
    ),
    FaultSpec(
        "VX-429",
        B.ERROR,
        "Vertex shared capacity",
        _GG,
        E.OVERLOADED,
        render=_gg(
            429,
            "RESOURCE_EXHAUSTED",
            "Resource exhausted. Please try again later. Please refer to https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
            errors=[{"domain": "global", "reason": "rateLimitExceeded"}],
        ),
    ),
]

FAULTS: dict[str, FaultSpec] = {row.id: row for row in _ROWS}

# alias → {flavor or family: fault id}; "*" is the fallback.
ALIASES: dict[str, dict[str, str]] = {
    "latency": {"*": "LATENCY"},
    "ttft_delay": {"*": "TTFT"},
    "slow_tokens": {"*": "NET-6"},
    "rate_limited": {
        "vertex": "GG-429M",
        "bedrock": "BR-429",
        "openai": "OA-429R",
        "azure": "AZ-429",
        "anthropic": "AN-429",
        "gemini": "GG-429M",
    },
    "quota_exhausted": {
        "vertex": "GG-402",
        "openai": "OA-429Q",
        "deepseek": "DS-402",
        "openrouter": "OR-402",
        "anthropic": "AN-402",
        "gemini": "GG-402",
    },
    "overloaded": {
        "bedrock": "BR-503",
        "openai": "OA-503",
        "deepseek": "DS-503",
        "openrouter": "OR-503",
        "groq": "GQ-498",
        "anthropic": "AN-529",
        "gemini": "GG-503",
        "vertex": "VX-429",
    },
    "server_error": {
        "vertex": "GG-500",
        "bedrock": "BR-500",
        "openai": "OA-500",
        "anthropic": "AN-500",
        "gemini": "GG-500",
    },
    "region_blocked": {
        "vertex": "GG-400L",
        "bedrock": "BR-400R",
        "openai": "OA-403R",
        "anthropic": "AN-403G",
        "gemini": "GG-400L",
    },
    "model_gone": {
        "vertex": "GG-404",
        "bedrock": "BR-400G",
        "openai": "OA-404",
        "azure": "AZ-404",
        "ollama": "OL-404",
        "anthropic": "AN-404",
        "gemini": "GG-404",
    },
    "auth": {"vertex": "VX-401", "bedrock": "BR-403S", "openai": "OA-401", "anthropic": "AN-401", "gemini": "GG-400K"},
    "context_length": {
        "bedrock": "BR-CTX",
        "openai": "OA-CTX",
        "vllm": "VL-ERR",
        "together": "TG-403",
        "anthropic": "AN-CTX",
    },
    "hang": {"*": "NET-3"},
    "refused": {"*": "NET-1"},
    "reset": {"*": "NET-2"},
    "malformed_json": {"*": "NET-8"},
    "html_502": {"*": "NET-9"},
    "empty_completion": {"*": "NET-10"},
    "empty_body": {"*": "EMPTY-BODY"},
    "huge_body": {"*": "BIG"},
    "stream_break": {"*": "NET-7"},
    "truncated": {"*": "NET-7"},
    "stall": {"*": "NET-5"},
    "mid_stream_error": {
        "vertex": "GG-MID",
        "bedrock": "BR-MID",
        "openai": "OA-MID",
        "openrouter": "OR-MID",
        "anthropic": "AN-MID",
        "gemini": "GG-MID",
    },
    "keepalive_queue": {"*": "NET-4"},
    "policy": {"*": "POL"},
    "catalogue_drift": {"*": "CAT-1"},
    "loading": {"*": "LC-LOAD"},
    "status_major": {"*": "ST-1"},
    "status_down": {"*": "ST-2"},
    "status_google": {"*": "ST-3"},
}


def resolve_fault(name: str, family: str, flavor: str | None = None) -> FaultSpec:
    """The catalogue row for a fault id (`OA-429R`) or alias (`rate_limited`) on a provider of this family/flavor.

    Raises ValueError naming the fault and what is known, or why it does not fit the family."""
    key = name.strip()
    alias = ALIASES.get(key.lower())
    if alias is not None:
        fid = alias.get(flavor or family) or alias.get(family) or alias.get("*")
        if fid is None:
            raise ValueError(f"fault alias {name!r} has no variant for the {family} family")
        return FAULTS[fid]
    spec = FAULTS.get(key.upper())
    if spec is None:
        raise ValueError(f"unknown fault {name!r}; known ids: {', '.join(FAULTS)}; aliases: {', '.join(ALIASES)}")
    if not spec.applies_to(family):
        fams = ", ".join(sorted(spec.families or ()))
        raise ValueError(f"fault {spec.id} is for the {fams} family; this provider speaks {family}")
    return spec
