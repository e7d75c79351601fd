"""The Vertex adapter: endpoints per publisher, Anthropic bodies without `model` and with `anthropic_version`,
token-count requests, and errors read in whichever shape they came (Google's platform body, Anthropic's)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.vertex import ANTHROPIC_VERSION, VertexAdapter, classify_vertex, publisher
from controlplane.config import ProviderConfig
from controlplane.domain import ErrorClass, Scope

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}


def _provider(**kw: Any) -> ProviderConfig:
    base = {"id": "vx", "adapter": "vertex", "project": "eu-proj", "region": "europe-west4", "models": [{"name": "m"}]}
    return ProviderConfig.model_validate({**base, **kw})


def test_region_and_project_build_the_endpoint_and_global_has_no_prefix() -> None:
    assert _provider().base_url == "https://europe-west4-aiplatform.googleapis.com/v1"
    assert _provider(region="global").base_url == "https://aiplatform.googleapis.com/v1"


def test_publisher_is_chosen_per_model() -> None:
    assert publisher("claude-sonnet-4-5@20250929") == "anthropic"
    assert publisher("gemini-2.5-flash") == "google"


def test_anthropic_models_get_messages_bodies_without_model_and_with_anthropic_version() -> None:
    req = VertexAdapter().build_request(_provider(), "claude-sonnet-4-5@20250929", BODY, stream=True)
    assert req.url == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/eu-proj/locations/europe-west4"
        "/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
    )
    body = json.loads(req.body or b"{}")
    assert "model" not in body and body["anthropic_version"] == ANTHROPIC_VERSION and body["stream"] is True


def test_gemini_models_get_generate_content() -> None:
    req = VertexAdapter().build_request(_provider(), "gemini-2.5-flash", BODY, stream=True)
    assert req.url.endswith("/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert json.loads(req.body or b"{}")["contents"][0]["parts"] == [{"text": "hi"}]


def test_count_requests_per_publisher() -> None:
    adapter, p = VertexAdapter(), _provider()
    an = adapter.count_request(p, "claude-sonnet-4-5@20250929", "hi")
    assert an.url.endswith("/publishers/anthropic/models/count-tokens:rawPredict")
    assert json.loads(an.body or b"{}")["model"] == "claude-sonnet-4-5@20250929"
    assert adapter.count_request(p, "gemini-2.5-flash", "hi").url.endswith("/models/gemini-2.5-flash:countTokens")


def _gg(status: int, rpc: str, message: str, **extra: Any) -> bytes:
    return json.dumps({"error": {"code": status, "message": message, "status": rpc, **extra}}).encode()


def _an(type_: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": type_, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "body", "cls", "scope"),
    [
        (
            401,
            _gg(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
            ErrorClass.AUTH,
            Scope.CREDENTIAL,
        ),
        (
            403,
            _gg(
                403,
                "PERMISSION_DENIED",
                "Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/projects/p/locations/europe-west4/publishers/google/models/m'.",
            ),
            ErrorClass.AUTH,
            Scope.TARGET,
        ),
        (404, _gg(404, "NOT_FOUND", "Publisher Model `m` not found."), ErrorClass.MODEL_GONE, Scope.TARGET),
        (
            400,
            _gg(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
            ErrorClass.REGION_BLOCKED,
            Scope.EGRESS,
        ),
        (
            429,
            _gg(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource exhausted. Please try again later.",
                errors=[{"reason": "rateLimitExceeded"}],
            ),
            ErrorClass.OVERLOADED,
            Scope.TARGET,
        ),
        (529, _an("overloaded_error", "Overloaded"), ErrorClass.OVERLOADED, Scope.TARGET),
        (500, _an("api_error", "Internal server error"), ErrorClass.SERVER_ERROR, Scope.TARGET),
        (
            400,
            _an("invalid_request_error", "prompt is too long: 300000 tokens > 200000 maximum"),
            ErrorClass.CLIENT_ERROR,
            Scope.TARGET,
        ),
    ],
)
def test_both_error_shapes(status: int, body: bytes, cls: ErrorClass, scope: Scope) -> None:
    c = classify_vertex(status, {}, body, now=NOW)
    assert (c.error_class, c.scope) == (cls, scope)
