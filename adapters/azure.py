"""Azure OpenAI: the OpenAI chat shape on Azure's two surfaces, with `api-key` or Entra ID credentials.

- Deployments (`base_url: https://{resource}.openai.azure.com`): `POST {base}/openai/deployments/{model}/chat/
  completions?api-version=…`, the model name being the deployment's name.
- v1 (`base_url: https://{resource}.openai.azure.com/openai/v1`): `POST {base}/chat/completions` with the
  deployment in the body's `model`, no api-version (unless one is configured, e.g. `preview`).

Credentials: `api_key` as the `api-key` header; without one, an Entra ID bearer token for the Cognitive Services
scope from azure-identity's `DefaultAzureCredential` (the `turnout[azure]` extra), fetched and renewed five
minutes before it expires, off the request path (`prepare`). Errors are OpenAI-shaped (§2.1): DeploymentNotFound
is model_gone (the breaker's grace for new deployments applies), content-filter 400s are the caller's, and
`x-ratelimit-remaining-*` is headroom.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import orjson

from adapters import calls
from adapters.base import ModelListing, UpstreamRequest
from adapters.headers import headroom_from_headers, lower_headers
from adapters.openai import OpenAIAdapter, classify_openai
from adapters.wire import openai as wire
from controlplane.domain import Classification, ErrorClass, Headroom
from controlplane.errors import ProviderError

if TYPE_CHECKING:
    from controlplane.config import ProviderConfig

__all__ = ["AzureAdapter", "ENTRA_SCOPE", "DEPLOYMENT_NOT_FOUND", "is_v1", "azure_headroom"]

ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
DEPLOYMENT_NOT_FOUND = "deployment_not_found"  # model_gone with the new-deployment grace
_RENEW_BEFORE_S = 300.0  # renew a token this long before it expires


def is_v1(provider: ProviderConfig) -> bool:
    """The v1 surface (`…/openai/v1`): the deployment goes in the body, not the path."""
    return provider.base_url.rstrip("/").endswith("/openai/v1")


def azure_headroom(headers: Mapping[str, str], now: datetime) -> Headroom | None:
    """OpenAI-style headroom when Azure sends limits; with only `x-ratelimit-remaining-*`, an exhausted dimension
    is headroom 0 (anything else is unknown: no ratio without a limit). `-1` placeholders count as unknown."""
    full = headroom_from_headers(headers, now, "openai")
    if full is not None:
        return full
    h = lower_headers(headers)
    for dim in ("tokens", "requests"):
        value = h.get(f"x-ratelimit-remaining-{dim}")
        try:
            remaining = float(value) if value is not None else None
        except ValueError:
            remaining = None
        if remaining == 0:
            return Headroom(
                ratio=0.0,
                dimension=dim,
                remaining_tokens=0.0 if dim == "tokens" else None,
                remaining_requests=0.0 if dim == "requests" else None,
            )
    return None


class _EntraTokens:
    """Entra ID access tokens per provider from DefaultAzureCredential (async), renewed before expiry."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}  # provider id -> (token, expires_on epoch s)
        self._credential: Any = None
        self._lock = asyncio.Lock()

    def token(self, provider_id: str) -> str | None:
        got = self._tokens.get(provider_id)
        return got[0] if got else None

    async def prepare(self, provider: ProviderConfig) -> None:
        got = self._tokens.get(provider.id)
        if got is not None and got[1] - time.time() > _RENEW_BEFORE_S:
            return
        async with self._lock:
            got = self._tokens.get(provider.id)
            if got is not None and got[1] - time.time() > _RENEW_BEFORE_S:
                return
            try:
                if self._credential is None:
                    from azure.identity.aio import DefaultAzureCredential  # the turnout[azure] extra

                    self._credential = DefaultAzureCredential()
                access = await self._credential.get_token(ENTRA_SCOPE)
            except Exception as exc:  # azure-identity raises ClientAuthenticationError and friends
                c = Classification(
                    ErrorClass.AUTH, code="no_credentials", detail=f"no Entra ID token: {type(exc).__name__}"
                )
                raise ProviderError(provider.id, None, c) from exc
            self._tokens[provider.id] = (str(access.token), float(access.expires_on))

    def forget_tokens(self) -> None:
        self._tokens.clear()

    def use(self, credential: Any) -> None:
        """Another azure-identity credential (an `AsyncTokenCredential`), e.g. a managed identity chosen in code."""
        self._credential = credential
        self._tokens.clear()


class AzureAdapter(OpenAIAdapter):
    """The Adapter for Azure OpenAI (implements adapters.base.Credentialed)."""

    name = "azure"

    def __init__(self) -> None:
        self.entra = _EntraTokens()

    async def prepare(self, provider: ProviderConfig) -> None:
        if provider.api_key is None:
            await self.entra.prepare(provider)

    def _auth(self, provider: ProviderConfig) -> dict[str, str]:
        headers: dict[str, str] = {}
        if provider.api_key is not None:
            headers["api-key"] = provider.api_key.get_secret_value()
        elif (token := self.entra.token(provider.id)) is not None:
            headers["authorization"] = f"Bearer {token}"
        headers.update(provider.headers)
        return headers

    def _url(self, provider: ProviderConfig, model: str | None, path: str) -> str:
        if is_v1(provider):
            url = f"{provider.base_url}{path}"
            return f"{url}?api-version={provider.api_version}" if provider.api_version else url
        prefix = f"/openai/deployments/{quote(model, safe='')}" if model is not None else "/openai"
        version = provider.api_version or wire.DEFAULT_AZURE_API_VERSION
        return f"{provider.base_url}{prefix}{path}?api-version={version}"

    def build_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        out = {k: v for k, v in body.items() if k != "turnout"}
        if is_v1(provider):
            out["model"] = model
        else:
            out.pop("model", None)  # the deployment in the path says which model
        if stream:
            out["stream"] = True
            if not provider.stream_usage:
                out.pop("stream_options", None)
        else:
            out.pop("stream", None)
            out.pop("stream_options", None)
        headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
        headers.update(self._auth(provider))
        return UpstreamRequest("POST", self._url(provider, model, "/chat/completions"), headers, orjson.dumps(out))

    def classify(
        self, status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
    ) -> Classification:
        if status == 401:
            self.entra.forget_tokens()  # a refused Entra token is renewed on next use, not only at its expiry
        c = classify_openai(status, headers, body, now=now)
        if c.code == "deploymentnotfound":
            # The breaker's grace for deployments created minutes ago keys on this code (controlplane/breaker.py).
            return replace(c, code=DEPLOYMENT_NOT_FOUND)
        return c

    def headroom(self, headers: Mapping[str, str], now: datetime) -> Headroom | None:
        return azure_headroom(headers, now)

    async def list_models(
        self, session: aiohttp.ClientSession, provider: ProviderConfig, *, timeout: float
    ) -> ModelListing:
        """The resource's model list (`/models`). It names models, not deployments, so the catalogue probe does
        not run for Azure providers (probes.applies); deployments are checked by the completion probe."""
        await self.prepare(provider)
        url = self._url(provider, None, "/models")
        got = await calls.fetch(
            session, UpstreamRequest("GET", url, self._auth(provider)), timeout=timeout, provider_id=provider.id
        )
        c = classify_openai(got.status, got.headers, got.body)
        if not c.ok:
            raise ProviderError(provider.id, None, c)
        doc = orjson.loads(got.body) if got.body.strip().startswith(b"{") else {}
        data = doc.get("data") if isinstance(doc, dict) else None
        models = [str(m["id"]) for m in data or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
        return ModelListing(models, None)
