"""Every row of provider-semantics.md §2/§6/§7 maps to the right error class and scope, per family."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.registry import ADAPTERS, get_adapter
from controlplane.domain import ErrorClass as E
from controlplane.domain import Scope as S
from tests.adapters.payloads import an, gg, js, oa

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

CDN = b"<html><head><title>502 Bad Gateway</title></head><body>Bad gateway</body></html>"
QUOTA_FAIL = "type.googleapis.com/google.rpc.QuotaFailure"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"

# (id, adapter, status, headers, body, class, scope, code)
ROWS = [
    # ---- OpenAI / Azure (OA body) ----
    (
        "OA-401",
        "openai",
        401,
        {},
        oa("invalid_request_error", "invalid_api_key", "Incorrect API key provided: sk-abc***xyz."),
        E.AUTH,
        S.CREDENTIAL,
        "invalid_api_key",
    ),
    ("OA-401-bare", "openai", 401, {}, oa("invalid_request_error", None, "IP not allowed"), E.AUTH, S.CREDENTIAL, None),
    (
        "OA-403R",
        "openai",
        403,
        {},
        oa("request_forbidden", "unsupported_country_region_territory", "Country, region, or territory not supported"),
        E.REGION_BLOCKED,
        S.EGRESS,
        "unsupported_country_region_territory",
    ),
    (
        "OA-404",
        "openai",
        404,
        {},
        oa("invalid_request_error", "model_not_found", "The model `m` does not exist or you do not have access to it."),
        E.MODEL_GONE,
        S.TARGET,
        "model_not_found",
    ),
    (
        "OA-429R",
        "openai",
        429,
        {"retry-after": "2"},
        oa("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 2s."),
        E.RATE_LIMITED,
        S.TARGET,
        "rate_limit_exceeded",
    ),
    (
        "OA-429-too-large",
        "openai",
        429,
        {},
        oa(
            "tokens",
            "rate_limit_exceeded",
            "Request too large for gpt-4o in organization org-x on tokens per min (TPM)",
        ),
        E.CLIENT_ERROR,
        S.TARGET,
        "request_too_large",
    ),
    (
        "OA-429S",
        "openai",
        429,
        {"retry-after": "5"},
        oa("rate_limit_error", "slow_down", "Please reduce your rate of requests."),
        E.RATE_LIMITED,
        S.TARGET,
        "slow_down",
    ),
    (
        "OA-429Q",
        "openai",
        429,
        {},
        oa(
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        ),
        E.QUOTA_EXHAUSTED,
        S.CREDENTIAL,
        "insufficient_quota",
    ),
    (
        "OA-429Q-credit",
        "openai",
        429,
        {},
        oa("insufficient_quota", "credit_balance_exhausted", "Credit balance exhausted"),
        E.QUOTA_EXHAUSTED,
        S.CREDENTIAL,
        "credit_balance_exhausted",
    ),
    (
        "OA-503",
        "openai",
        503,
        {"retry-after": "1"},
        oa("service_unavailable_error", "server_is_overloaded", "The server is overloaded."),
        E.OVERLOADED,
        S.TARGET,
        "server_is_overloaded",
    ),
    (
        "OA-500",
        "openai",
        500,
        {},
        oa("server_error", None, "The server had an error while processing your request. Sorry about that!"),
        E.SERVER_ERROR,
        S.TARGET,
        "server_error",
    ),
    (
        "OA-CTX",
        "openai",
        400,
        {},
        oa(
            "invalid_request_error",
            "context_length_exceeded",
            "This model's maximum context length is 8192 tokens.",
            param="messages",
        ),
        E.CLIENT_ERROR,
        S.TARGET,
        "context_length_exceeded",
    ),
    (
        "OA-400",
        "openai",
        400,
        {},
        oa("invalid_request_error", None, "Invalid value for 'temperature'."),
        E.CLIENT_ERROR,
        S.TARGET,
        None,
    ),
    (
        "AZ-429",
        "openai",
        429,
        {"retry-after": "6", "retry-after-ms": "6000"},
        js(
            {
                "error": {
                    "code": "429",
                    "message": "Requests to the ChatCompletions_Create Operation have exceeded token rate limit. Please retry after 6 seconds.",
                }
            }
        ),
        E.RATE_LIMITED,
        S.TARGET,
        None,
    ),
    (
        "AZ-404",
        "openai",
        404,
        {},
        js(
            {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}}
        ),
        E.MODEL_GONE,
        S.TARGET,
        "deploymentnotfound",
    ),
    (
        "AZ-CF",
        "openai",
        400,
        {},
        oa(
            None,
            "content_filter",
            "The response was filtered due to the prompt triggering content management policy.",
            param="prompt",
            innererror={
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {"violence": {"filtered": True, "severity": "medium"}},
            },
        ),
        E.CLIENT_ERROR,
        S.TARGET,
        "content_filter",
    ),
    # ---- compatible hosts ----
    (
        "DS-402",
        "openai",
        402,
        {},
        oa("unknown_error", "invalid_request_error", "Insufficient Balance"),
        E.QUOTA_EXHAUSTED,
        S.CREDENTIAL,
        None,
    ),
    (
        "DS-503",
        "openai",
        503,
        {},
        oa("unknown_error", "invalid_request_error", "Server overloaded, please try again later"),
        E.OVERLOADED,
        S.TARGET,
        None,
    ),
    (
        "DS-CTX",
        "openai",
        400,
        {},
        oa("invalid_request_error", "invalid_request_error", "This model's maximum context length is 65536 tokens."),
        E.CLIENT_ERROR,
        S.TARGET,
        "context_length_exceeded",
    ),
    (
        "GQ-498",
        "openai",
        498,
        {},
        oa("capacity_exceeded", "capacity_exceeded", "Flex tier capacity exceeded"),
        E.OVERLOADED,
        S.TARGET,
        "capacity_exceeded",
    ),
    (
        "GQ-429",
        "openai",
        429,
        {"retry-after": "7"},
        oa("tokens", "rate_limit_exceeded", "Rate limit reached for model on tokens per minute"),
        E.RATE_LIMITED,
        S.TARGET,
        "rate_limit_exceeded",
    ),
    (
        "TG-402",
        "openai",
        402,
        {},
        oa("credit_limit", None, "Credit limit exceeded"),
        E.QUOTA_EXHAUSTED,
        S.CREDENTIAL,
        None,
    ),
    (
        "TG-403",
        "openai",
        403,
        {},
        oa(
            "invalid_request_error",
            None,
            "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 8193. Given: 9000 inputs tokens and 100 max_new_tokens; exceeds the context length",
        ),
        E.CLIENT_ERROR,
        S.TARGET,
        "context_length_exceeded",
    ),
    (
        "TG-503",
        "openai",
        503,
        {},
        oa("server_error", "engine_overloaded", "The engine is currently overloaded"),
        E.OVERLOADED,
        S.TARGET,
        "engine_overloaded",
    ),
    ("FW-412", "openai", 412, {}, oa("error", None, "Account suspended"), E.QUOTA_EXHAUSTED, S.CREDENTIAL, None),
    (
        "FW-404",
        "openai",
        404,
        {},
        oa("error", None, "Model not found, inaccessible, and/or not deployed"),
        E.MODEL_GONE,
        S.TARGET,
        None,
    ),
    ("FW-403", "openai", 403, {}, oa("error", None, "Forbidden"), E.AUTH, S.TARGET, None),
    (
        "OR-402",
        "openai",
        402,
        {},
        js({"error": {"code": 402, "message": "Insufficient credits. Add more using https://openrouter.ai/credits"}}),
        E.QUOTA_EXHAUSTED,
        S.CREDENTIAL,
        None,
    ),
    (
        "OR-402-inflight",
        "openai",
        402,
        {"Retry-After": "3"},
        js(
            {
                "error": {
                    "code": 402,
                    "message": "Request exceeds in-flight budget",
                    "metadata": {"limit_source": "openrouter_in_flight_budget"},
                }
            }
        ),
        E.RATE_LIMITED,
        S.TARGET,
        "openrouter_in_flight_budget",
    ),
    (
        "OR-403-moderation",
        "openai",
        403,
        {},
        js(
            {
                "error": {
                    "code": 403,
                    "message": "Input was flagged",
                    "metadata": {
                        "reasons": ["violence"],
                        "flagged_input": "…",
                        "provider_name": "X",
                        "model_slug": "m",
                    },
                }
            }
        ),
        E.CLIENT_ERROR,
        S.TARGET,
        "moderation",
    ),
    (
        "OR-502",
        "openai",
        502,
        {},
        js({"error": {"code": 502, "message": "Provider returned error"}}),
        E.SERVER_ERROR,
        S.TARGET,
        None,
    ),
    (
        "OR-503",
        "openai",
        503,
        {"Retry-After": "30"},
        js({"error": {"code": 503, "message": "No allowed providers are available for the selected model."}}),
        E.OVERLOADED,
        S.TARGET,
        None,
    ),
    (
        "MI-unknown-model",
        "openai",
        400,
        {},
        js(
            {
                "object": "error",
                "message": "Invalid model: mistral-x",
                "type": "invalid_request_error",
                "param": None,
                "code": "unknown_model",
            }
        ),
        E.MODEL_GONE,
        S.TARGET,
        "unknown_model",
    ),
    (
        "MI-403-tier",
        "openai",
        403,
        {},
        js(
            {
                "object": "error",
                "message": "Model not available on your plan",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        ),
        E.AUTH,
        S.TARGET,
        None,
    ),
    (
        "VL-ERR",
        "openai",
        400,
        {},
        js(
            {
                "object": "error",
                "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        ),
        E.CLIENT_ERROR,
        S.TARGET,
        "context_length_exceeded",
    ),
    (
        "OL-404",
        "openai",
        404,
        {},
        oa("not_found_error", None, 'model "x" not found, try pulling it first'),
        E.MODEL_GONE,
        S.TARGET,
        None,
    ),
    (
        "LC-LOAD",
        "openai",
        503,
        {},
        js({"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}),
        E.CONNECT,
        S.TARGET,
        "loading_model",
    ),
    (
        "xAI-string",
        "openai",
        401,
        {},
        js({"code": "Client specified an invalid argument", "error": "Incorrect API key provided"}),
        E.AUTH,
        S.CREDENTIAL,
        None,
    ),
    # ---- status fallbacks and transport-ish answers ----
    ("NET-9-502", "openai", 502, {"content-type": "text/html"}, CDN, E.BAD_RESPONSE, S.TARGET, None),
    ("NET-9-200", "openai", 200, {"content-type": "text/html"}, CDN, E.BAD_RESPONSE, S.TARGET, "html"),
    ("empty-200", "openai", 200, {}, b"", E.BAD_RESPONSE, S.TARGET, "empty_body"),
    ("bare-502", "openai", 502, {}, b"", E.TIMEOUT, S.TARGET, None),
    ("bare-503", "openai", 503, {}, b"Service Unavailable", E.TIMEOUT, S.TARGET, None),
    ("bare-504", "openai", 504, {}, b"", E.TIMEOUT, S.TARGET, None),
    ("408", "openai", 408, {}, b"", E.TIMEOUT, S.TARGET, None),
    ("409", "openai", 409, {}, oa("conflict", None, "conflict"), E.SERVER_ERROR, S.TARGET, None),
    ("413", "openai", 413, {}, b"too large", E.CLIENT_ERROR, S.TARGET, None),
    ("422", "openai", 422, {}, oa("invalid_request_error", None, "unprocessable"), E.CLIENT_ERROR, S.TARGET, None),
    ("ok-200", "openai", 200, {}, js({"id": "x", "choices": []}), E.OK, S.TARGET, None),
    # ---- Anthropic (AN body) ----
    (
        "AN-401",
        "anthropic",
        401,
        {},
        an("authentication_error", "invalid x-api-key"),
        E.AUTH,
        S.CREDENTIAL,
        "authentication_error",
    ),
    (
        "AN-402",
        "anthropic",
        402,
        {},
        an("billing_error", "Your credit balance is too low"),
        E.QUOTA_EXHAUSTED,
        S.CREDENTIAL,
        "billing_error",
    ),
    (
        "AN-403",
        "anthropic",
        403,
        {},
        an("permission_error", "Your API key does not have permission to use the specified resource."),
        E.AUTH,
        S.TARGET,
        "permission_error",
    ),
    (
        "AN-403G",
        "anthropic",
        403,
        {},
        js({"error": {"type": "forbidden", "message": "Request not allowed"}}),
        E.REGION_BLOCKED,
        S.EGRESS,
        "forbidden",
    ),
    (
        "AN-404",
        "anthropic",
        404,
        {},
        an("not_found_error", "model: claude-x"),
        E.MODEL_GONE,
        S.TARGET,
        "not_found_error",
    ),
    (
        "AN-413",
        "anthropic",
        413,
        {},
        an("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        E.CLIENT_ERROR,
        S.TARGET,
        "request_too_large",
    ),
    (
        "AN-429",
        "anthropic",
        429,
        {"retry-after": "12"},
        an("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
        E.RATE_LIMITED,
        S.TARGET,
        "rate_limit_error",
    ),
    (
        "AN-429S",
        "anthropic",
        429,
        {},
        an(
            "rate_limit_error",
            "You have reached your monthly spend limit",
            details={"error_code": "enforced_spend_limit_reached"},
        ),
        E.QUOTA_EXHAUSTED,
        S.CREDENTIAL,
        "enforced_spend_limit_reached",
    ),
    (
        "AN-400-spend",
        "anthropic",
        400,
        {},
        an("invalid_request_error", "You have reached your specified workspace API usage limits."),
        E.QUOTA_EXHAUSTED,
        S.CREDENTIAL,
        "spend_limit",
    ),
    (
        "AN-400-credit",
        "anthropic",
        400,
        {},
        an("invalid_request_error", "Your credit balance is too low to access the Anthropic API."),
        E.QUOTA_EXHAUSTED,
        S.CREDENTIAL,
        "spend_limit",
    ),
    ("AN-529", "anthropic", 529, {}, an("overloaded_error", "Overloaded"), E.OVERLOADED, S.TARGET, "overloaded_error"),
    ("AN-500", "anthropic", 500, {}, an("api_error", "Internal server error"), E.SERVER_ERROR, S.TARGET, "api_error"),
    ("AN-504", "anthropic", 504, {}, an("timeout_error", "Request timeout"), E.TIMEOUT, S.TARGET, "timeout_error"),
    (
        "AN-CTX",
        "anthropic",
        400,
        {},
        an("invalid_request_error", "prompt is too long: 207791 tokens > 200000 maximum"),
        E.CLIENT_ERROR,
        S.TARGET,
        "context_length_exceeded",
    ),
    (
        "AN-CTX2",
        "anthropic",
        400,
        {},
        an("invalid_request_error", "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000"),
        E.CLIENT_ERROR,
        S.TARGET,
        "context_length_exceeded",
    ),
    (
        "AN-400",
        "anthropic",
        400,
        {},
        an("invalid_request_error", "messages: roles must alternate"),
        E.CLIENT_ERROR,
        S.TARGET,
        "invalid_request_error",
    ),
    ("AN-NET-9", "anthropic", 502, {}, CDN, E.BAD_RESPONSE, S.TARGET, None),
    ("AN-bare-503", "anthropic", 503, {}, b"", E.TIMEOUT, S.TARGET, None),
    ("AN-empty-200", "anthropic", 200, {}, b"  ", E.BAD_RESPONSE, S.TARGET, "empty_body"),
    # ---- Gemini / Vertex (GG body) ----
    (
        "GG-400L",
        "gemini",
        400,
        {},
        gg(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
        E.REGION_BLOCKED,
        S.EGRESS,
        "FAILED_PRECONDITION",
    ),
    (
        "GG-403R",
        "gemini",
        403,
        {},
        gg(403, "PERMISSION_DENIED", "Region not supported."),
        E.REGION_BLOCKED,
        S.EGRESS,
        "PERMISSION_DENIED",
    ),
    (
        "GG-403",
        "gemini",
        403,
        {},
        gg(403, "PERMISSION_DENIED", "Permission denied on resource project."),
        E.AUTH,
        S.TARGET,
        "PERMISSION_DENIED",
    ),
    (
        "GG-400K",
        "gemini",
        400,
        {},
        gg(
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
        E.AUTH,
        S.CREDENTIAL,
        "API_KEY_INVALID",
    ),
    (
        "GG-404",
        "gemini",
        404,
        {},
        gg(404, "NOT_FOUND", "models/x is not found for API version v1beta"),
        E.MODEL_GONE,
        S.TARGET,
        "NOT_FOUND",
    ),
    (
        "GG-402",
        "gemini",
        402,
        {},
        gg(402, "RESOURCE_EXHAUSTED", "Prepaid credits exhausted"),
        E.QUOTA_EXHAUSTED,
        S.CREDENTIAL,
        "RESOURCE_EXHAUSTED",
    ),
    (
        "GG-429M",
        "gemini",
        429,
        {},
        gg(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            [
                {
                    "@type": QUOTA_FAIL,
                    "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}],
                },
                {"@type": RETRY_INFO, "retryDelay": "26s"},
            ],
        ),
        E.RATE_LIMITED,
        S.TARGET,
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
    ),
    (
        "GG-429D",
        "gemini",
        429,
        {},
        gg(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            [
                {"@type": QUOTA_FAIL, "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
                {"@type": RETRY_INFO, "retryDelay": "26s"},
            ],
        ),
        E.QUOTA_EXHAUSTED,
        S.TARGET,
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
    ),
    (
        "VX-429",
        "gemini",
        429,
        {},
        gg(
            429,
            "RESOURCE_EXHAUSTED",
            "Resource exhausted. Please try again later. Please refer to https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429",
            errors=[{"domain": "global", "reason": "rateLimitExceeded"}],
        ),
        E.OVERLOADED,
        S.TARGET,
        "rateLimitExceeded",
    ),
    (
        "GG-400-CTX",
        "gemini",
        400,
        {},
        gg(
            400,
            "INVALID_ARGUMENT",
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
        ),
        E.CLIENT_ERROR,
        S.TARGET,
        "context_length_exceeded",
    ),
    (
        "GG-400",
        "gemini",
        400,
        {},
        gg(400, "INVALID_ARGUMENT", "Invalid JSON payload received."),
        E.CLIENT_ERROR,
        S.TARGET,
        "INVALID_ARGUMENT",
    ),
    (
        "GG-500",
        "gemini",
        500,
        {},
        gg(500, "INTERNAL", "An internal error has occurred."),
        E.SERVER_ERROR,
        S.TARGET,
        "INTERNAL",
    ),
    (
        "GG-503",
        "gemini",
        503,
        {},
        gg(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        E.OVERLOADED,
        S.TARGET,
        "UNAVAILABLE",
    ),
    (
        "GG-504",
        "gemini",
        504,
        {},
        gg(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
        E.TIMEOUT,
        S.TARGET,
        "DEADLINE_EXCEEDED",
    ),
    (
        "GG-POL",
        "gemini",
        200,
        {},
        js({"promptFeedback": {"blockReason": "SAFETY"}}),
        E.CLIENT_ERROR,
        S.TARGET,
        "SAFETY",
    ),
    ("GG-NET-9", "gemini", 502, {}, CDN, E.BAD_RESPONSE, S.TARGET, None),
    ("GG-bare-504", "gemini", 504, {}, b"", E.TIMEOUT, S.TARGET, None),
    ("GG-ok", "gemini", 200, {}, js({"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}), E.OK, S.TARGET, None),
]


@pytest.mark.parametrize(
    ("adapter", "status", "headers", "body", "error_class", "scope", "code"),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_classification_table_row_maps_to_class_and_scope(
    adapter: str, status: int, headers: dict[str, str], body: bytes, error_class: E, scope: S, code: str | None
) -> None:
    c = get_adapter(adapter).classify(status, headers, body)
    assert (c.error_class, c.scope) == (error_class, scope), c
    assert c.status == status
    if code is not None:
        assert c.code == code
    assert len(c.detail) <= 200


@pytest.mark.parametrize(
    ("adapter", "status", "body"),
    [
        (
            "openai",
            400,
            oa("invalid_request_error", "context_length_exceeded", "maximum context length is 8192 tokens"),
        ),
        ("openai", 403, oa(None, None, "tokens + max_new_tokens exceed the context length")),
        ("anthropic", 400, an("invalid_request_error", "prompt is too long: 207791 tokens > 200000 maximum")),
        (
            "gemini",
            400,
            gg(400, "INVALID_ARGUMENT", "The input token count (9) exceeds the maximum number of tokens allowed (8)."),
        ),
    ],
)
def test_every_context_too_long_variant_sets_context_exceeded(adapter: str, status: int, body: bytes) -> None:
    c = get_adapter(adapter).classify(status, {}, body)
    assert c.error_class is E.CLIENT_ERROR and c.context_exceeded


def test_plain_client_errors_are_not_context_exceeded() -> None:
    assert (
        not get_adapter("openai")
        .classify(400, {}, oa("invalid_request_error", None, "bad temperature"))
        .context_exceeded
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500", "retry-after": "3"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": "Thu, 01 Jan 2026 12:00:10 GMT"}, 10.0),
        ({"retry-after": "garbage"}, None),
    ],
)
@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_retry_hints_prefer_ms_then_seconds_then_http_date(
    adapter: str, headers: dict[str, str], expected: float | None
) -> None:
    body = {
        "openai": oa("requests", "rate_limit_exceeded", "slow"),
        "anthropic": an("rate_limit_error", "slow"),
        "gemini": gg(429, "RESOURCE_EXHAUSTED", "slow"),
        "azure": js({"error": {"code": "429", "message": "slow"}}),
        "bedrock": js({"__type": "ThrottlingException", "message": "slow"}),
        "vertex": gg(429, "RESOURCE_EXHAUSTED", "slow"),
    }[adapter]
    c = get_adapter(adapter).classify(429, headers, body, now=NOW)  # type: ignore[call-arg]
    assert c.error_class is E.RATE_LIMITED
    assert c.retry_after_s == expected


def test_retry_hint_falls_back_to_message_text() -> None:
    c = get_adapter("openai").classify(
        429, {}, oa("tokens", "rate_limit_exceeded", "Rate limit reached. Please try again in 6ms.")
    )
    assert c.retry_after_s == pytest.approx(0.006)
    azure = get_adapter("openai").classify(
        429, {}, js({"error": {"code": "429", "message": "Please retry after 6 seconds."}})
    )
    assert azure.retry_after_s == 6.0


def test_gemini_retry_info_delay_is_the_hint_without_headers() -> None:
    body = gg(429, "RESOURCE_EXHAUSTED", "quota", [{"@type": RETRY_INFO, "retryDelay": "26s"}])
    assert get_adapter("gemini").classify(429, {}, body).retry_after_s == 26.0


def test_gemini_daily_quota_cools_until_midnight_pacific() -> None:
    body = gg(
        429,
        "RESOURCE_EXHAUSTED",
        "quota",
        [{"@type": QUOTA_FAIL, "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}],
    )
    # 12:00 UTC on 1 Jan = 04:00 PST: 20 hours to go
    c = get_adapter("gemini").classify(429, {}, body, now=NOW)  # type: ignore[call-arg]
    assert c.retry_after_s == pytest.approx(20 * 3600)


@pytest.mark.parametrize(("value", "expected"), [("false", False), ("true", True), ("maybe", None)])
def test_x_should_retry_is_carried(value: str, expected: bool | None) -> None:
    c = get_adapter("openai").classify(
        503, {"x-should-retry": value}, oa("service_unavailable_error", "server_is_overloaded", "busy")
    )
    assert c.should_retry is expected


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_detail_never_echoes_keys_and_is_short(adapter: str) -> None:
    body = js(
        {
            "error": {
                "message": "Incorrect API key provided: sk-proj-ABCDEFGHIJKLMNOP1234 and key AIzaSyABCDEFGH12345 "
                + "x" * 500,
                "type": "authentication_error",
                "code": "invalid_api_key",
                "status": "UNAUTHENTICATED",
            }
        }
    )
    c = get_adapter(adapter).classify(401, {"authorization": "Bearer sk-secret-123456"}, body)
    assert c.error_class is E.AUTH
    assert "ABCDEFGHIJKLMNOP" not in c.detail and "AIzaSy" not in c.detail and "sk-secret" not in c.detail
    assert len(c.detail) <= 200


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 408, 409, 418, 429, 500, 502, 503, 504, 529, 599])
@pytest.mark.parametrize(
    "body", [b"", b"not json", b"{", b"[]", b"null", b'{"error": 5}', b'{"error": {"code": {"x": 1}}}', CDN]
)
def test_any_status_and_garbage_body_still_classifies(adapter: str, status: int, body: bytes) -> None:
    c = get_adapter(adapter).classify(status, {}, body)
    assert c.error_class is not E.OK
    assert c.status == status
