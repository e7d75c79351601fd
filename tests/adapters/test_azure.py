"""The Azure adapter: both surfaces' URLs, api-key or Entra ID bearer tokens (renewed before expiry), errors as
OpenAI-shaped Azure answers, and `x-ratelimit-remaining-*` as headroom."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from adapters.azure import ENTRA_SCOPE, AzureAdapter, azure_headroom
from controlplane.config import ProviderConfig
from controlplane.domain import ErrorClass
from controlplane.errors import ProviderError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BODY = {"model": "ignored", "messages": [{"role": "user", "content": "hi"}]}


def _provider(**kw: Any) -> ProviderConfig:
    base = {"id": "az", "adapter": "azure", "base_url": "https://res.openai.azure.com", "models": [{"name": "dep"}]}
    return ProviderConfig.model_validate({**base, **kw})


def test_deployment_surface_puts_the_deployment_in_the_path_with_api_version() -> None:
    req = AzureAdapter().build_request(_provider(api_key="k"), "dep", BODY, stream=False)
    assert req.url == "https://res.openai.azure.com/openai/deployments/dep/chat/completions?api-version=2024-10-21"
    assert req.headers["api-key"] == "k" and "authorization" not in req.headers
    assert "model" not in json.loads(req.body or b"{}")


def test_v1_surface_puts_the_deployment_in_the_body() -> None:
    p = _provider(api_key="k", base_url="https://res.openai.azure.com/openai/v1")
    req = AzureAdapter().build_request(p, "dep", BODY, stream=True)
    assert req.url == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert json.loads(req.body or b"{}")["model"] == "dep"


class _Credential:
    def __init__(self, lifetime: float) -> None:
        self.calls: list[str] = []
        self.lifetime = lifetime

    async def get_token(self, *scopes: str, **kw: Any) -> AccessToken:
        self.calls.extend(scopes)
        return AccessToken(f"entra-{len(self.calls)}", int(time.time() + self.lifetime))


async def test_without_api_key_an_entra_token_is_the_bearer_and_is_renewed_before_expiry() -> None:
    adapter, p = AzureAdapter(), _provider()
    cred = _Credential(lifetime=3600)
    adapter.entra.use(cred)
    await adapter.prepare(p)
    await adapter.prepare(p)  # still fresh: no second fetch
    assert cred.calls == [ENTRA_SCOPE]
    assert adapter.build_request(p, "dep", BODY, stream=False).headers["authorization"] == "Bearer entra-1"
    short = _Credential(lifetime=60)  # expires within the renewal margin: fetched again on the next request
    adapter.entra.use(short)
    await adapter.prepare(p)
    await adapter.prepare(p)
    assert short.calls == [ENTRA_SCOPE, ENTRA_SCOPE]


async def test_a_failing_credential_is_auth() -> None:
    class Broken:
        async def get_token(self, *scopes: str, **kw: Any) -> AccessToken:
            raise RuntimeError("no identity")

    adapter = AzureAdapter()
    adapter.entra.use(Broken())
    with pytest.raises(ProviderError) as err:
        await adapter.prepare(_provider())
    assert err.value.classification.error_class is ErrorClass.AUTH


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (
            404,
            {
                "error": {
                    "code": "DeploymentNotFound",
                    "message": "The API deployment for this resource does not exist.",
                }
            },
            ErrorClass.MODEL_GONE,
        ),
        (429, {"error": {"code": "429", "message": "Please retry after 6 seconds."}}, ErrorClass.RATE_LIMITED),
        (
            400,
            {
                "error": {
                    "code": "content_filter",
                    "message": "filtered",
                    "innererror": {"code": "ResponsibleAIPolicyViolation"},
                }
            },
            ErrorClass.CLIENT_ERROR,
        ),
        (
            401,
            {
                "error": {
                    "code": "401",
                    "message": "Access denied due to invalid subscription key or wrong API endpoint.",
                }
            },
            ErrorClass.AUTH,
        ),
    ],
)
def test_azure_errors(status: int, body: dict[str, Any], cls: ErrorClass) -> None:
    c = AzureAdapter().classify(status, {"retry-after": "6"}, json.dumps(body).encode(), now=NOW)
    assert c.error_class is cls
    assert (c.code == "deployment_not_found") == (status == 404)  # the breaker's new-deployment grace keys on it


def test_headroom_from_limits_or_an_exhausted_remaining() -> None:
    h = azure_headroom({"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "250"}, NOW)
    assert h is not None and h.ratio == 0.25
    h = azure_headroom({"x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "-1"}, NOW)
    assert h is not None and (h.ratio, h.dimension) == (0.0, "requests")
    assert azure_headroom({"x-ratelimit-remaining-tokens": "900"}, NOW) is None  # no limit: no ratio to report
