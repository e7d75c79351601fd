"""Google Vertex AI: Gemini models and Anthropic's models on Vertex, chosen per model, with OAuth2 bearer tokens.

Endpoints are `{base}/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{method}`, where
`base` is `https://{region}-aiplatform.googleapis.com/v1` (`https://aiplatform.googleapis.com/v1` for `global`)
unless `base_url` overrides it. A model whose name starts with `claude` is Anthropic's: Messages bodies without
`model` and with `anthropic_version` (`api_version`, default `vertex-2023-10-16`) to `:rawPredict` /
`:streamRawPredict`, token counting at `…/publishers/anthropic/models/count-tokens:rawPredict`. Every other model
is Google's: `:generateContent`, `:streamGenerateContent?alt=sse`, `:countTokens` (adapters/gemini.py translates).

Errors come in two shapes on the Anthropic publisher: the platform's (quota, 401, 403, 404) in Google's body
with an RPC `status`, the model's (overloaded, 500) in Anthropic's; each is read by its own family's rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import orjson

from adapters import calls
from adapters.anthropic import AnthropicStream, classify_anthropic_info, from_message, to_messages_request
from adapters.base import ModelListing, StreamTranslator, UpstreamRequest
from adapters.gemini import GeminiStream, classify_gemini_info, from_generate, to_generate_request
from adapters.google_auth import GoogleTokens
from adapters.wire.common import ErrorInfo, json_or_none
from adapters.wire.status import classify_answer, make
from controlplane.domain import Classification, ErrorClass, Headroom, Scope

if TYPE_CHECKING:
    from controlplane.config import ProviderConfig

__all__ = ["VertexAdapter", "ANTHROPIC_VERSION", "publisher", "classify_vertex"]

ANTHROPIC_VERSION = "vertex-2023-10-16"


def publisher(model: str) -> str:
    """`anthropic` for Claude models, `google` for everything else."""
    return "anthropic" if model.lower().startswith("claude") else "google"


def _by_shape(status: int | None, info: ErrorInfo, headers: Mapping[str, str], now: datetime) -> Classification:
    """Google's body names an RPC `status`; Anthropic's has a top-level `type: error` and `error.type`."""
    if info.status is None and (info.top_type == "error" or (info.type or "").endswith("_error")):
        return classify_anthropic_info(status, info, headers, now)
    if (info.status or "").upper() == "PERMISSION_DENIED" and "denied on resource" in info.lower_message():
        # An IAM refusal names the resource, `…/locations/europe-west4/…`: that "location" is no region block.
        return make(
            ErrorClass.AUTH,
            status=status,
            info=info,
            headers=headers,
            now=now,
            scope=Scope.TARGET,
            code="PERMISSION_DENIED",
        )
    return classify_gemini_info(status, info, headers, now)


def classify_vertex(
    status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
) -> Classification:
    """Error class of one Vertex answer, whichever publisher's shape it came in."""
    return classify_answer(status, headers, body, now, _by_shape)


class VertexAdapter(calls.StreamedProbe):
    """The Adapter for Vertex AI (implements adapters.base.Credentialed)."""

    name = "vertex"

    def __init__(self) -> None:
        self.tokens = GoogleTokens()

    async def prepare(self, provider: ProviderConfig) -> None:
        await self.tokens.prepare(provider)

    def _model_url(self, provider: ProviderConfig, model: str, method: str, owner: str | None = None) -> str:
        return (
            f"{provider.base_url}/projects/{quote(provider.project or '', safe='')}/locations/{provider.region}"
            f"/publishers/{owner or publisher(model)}/models/{quote(model, safe='@')}:{method}"
        )

    def _headers(self, provider: ProviderConfig, accept: str = "application/json") -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": accept}
        if (token := self.tokens.token(provider)) is not None:
            headers["authorization"] = f"Bearer {token}"
        headers.update(provider.headers)
        return headers

    def _anthropic_body(self, provider: ProviderConfig, body: Mapping[str, Any], model: str, stream: bool) -> bytes:
        req = to_messages_request(body, model, stream=stream)
        req.pop("model", None)  # the path names it
        req["anthropic_version"] = provider.api_version or ANTHROPIC_VERSION
        return orjson.dumps(req)

    def build_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        accept = "text/event-stream" if stream else "application/json"
        if publisher(model) == "anthropic":
            url = self._model_url(provider, model, "streamRawPredict" if stream else "rawPredict")
            payload = self._anthropic_body(provider, body, model, stream)
        else:
            url = self._model_url(provider, model, "streamGenerateContent?alt=sse" if stream else "generateContent")
            payload = orjson.dumps(to_generate_request(body))
        return UpstreamRequest("POST", url, self._headers(provider, accept), payload)

    def count_request(self, provider: ProviderConfig, model: str, prompt: str) -> UpstreamRequest:
        """The free token count: Google's `:countTokens`, or Anthropic's `count-tokens:rawPredict`."""
        messages = [{"role": "user", "content": prompt}]
        if publisher(model) == "anthropic":
            url = self._model_url(provider, "count-tokens", "rawPredict", owner="anthropic")
            payload = orjson.dumps(
                {"anthropic_version": provider.api_version or ANTHROPIC_VERSION, "model": model, "messages": messages}
            )
        else:
            url = self._model_url(provider, model, "countTokens")
            payload = orjson.dumps({"contents": to_generate_request({"messages": messages})["contents"]})
        return UpstreamRequest("POST", url, self._headers(provider), payload)

    def parse_response(self, body: bytes, *, model: str) -> dict[str, Any]:
        doc = json_or_none(body)
        return from_message(doc, model) if publisher(model) == "anthropic" else from_generate(doc, model)

    def stream_translator(self, *, model: str) -> StreamTranslator:
        return AnthropicStream(model) if publisher(model) == "anthropic" else GeminiStream(model)

    def classify(
        self, status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
    ) -> Classification:
        c = classify_vertex(status, headers, body, now=now or datetime.now(UTC))
        if status == 401:
            self.tokens.forget_tokens()  # the classifier is told no provider: every token is renewed on next use
        return c

    def headroom(self, headers: Mapping[str, str], now: datetime) -> Headroom | None:
        return None  # Vertex sends no rate-limit headers (§3)

    async def list_models(
        self, session: aiohttp.ClientSession, provider: ProviderConfig, *, timeout: float
    ) -> ModelListing:
        """Vertex has no v1 publisher-model listing: the configured models are the catalogue (the catalogue
        probe does not run for Vertex, see probes.applies); count-tokens and completions see a gone model."""
        return ModelListing([m.name for m in provider.models], None)
