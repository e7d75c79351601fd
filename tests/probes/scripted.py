"""A scripted adapter for probe and scheduler unit tests (answers from a script, records its calls)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aiohttp

from adapters.base import CompletionProbeResult, ModelListing, UpstreamRequest
from controlplane.config import Config, ProviderConfig
from controlplane.config_loader import parse_config
from controlplane.domain import Classification, ErrorClass, Headroom
from controlplane.errors import ProviderError

__all__ = ["ScriptedAdapter", "make_config"]


class ScriptedAdapter:
    """`models`: what list_models returns (or a ProviderError to raise); `completions`: results in order
    (the last repeats)."""

    name = "scripted"

    def __init__(
        self,
        models: list[str] | ProviderError | None = None,
        completions: list[CompletionProbeResult] | None = None,
        base: str = "http://127.0.0.1:9",
    ) -> None:
        self.models = models if models is not None else []
        self.completions = completions or [CompletionProbeResult(Classification(ErrorClass.OK), latency_s=0.1)]
        self.base = base
        self.calls: list[tuple[str, Any]] = []

    async def list_models(
        self, session: aiohttp.ClientSession, provider: ProviderConfig, *, timeout: float
    ) -> ModelListing:
        self.calls.append(("list_models", provider.id))
        if isinstance(self.models, ProviderError):
            raise self.models
        return ModelListing(list(self.models), Headroom(0.5, "requests"))

    async def probe_completion(
        self,
        session: aiohttp.ClientSession,
        provider: ProviderConfig,
        model: str,
        *,
        prompt: str,
        max_tokens: int,
        timeout: float,
    ) -> CompletionProbeResult:
        self.calls.append(("probe_completion", (model, max_tokens)))
        return self.completions.pop(0) if len(self.completions) > 1 else self.completions[0]

    def build_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        url = (
            f"{self.base}/v1/messages"
            if provider.adapter == "anthropic"
            else f"{self.base}/models/{model}:generateContent"
        )
        return UpstreamRequest("POST", url, {"x-api-key": "k"}, b"{}")

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Classification:
        if 200 <= status < 300:
            return Classification(ErrorClass.OK, status=status)
        table = {
            401: ErrorClass.AUTH,
            404: ErrorClass.MODEL_GONE,
            429: ErrorClass.RATE_LIMITED,
            529: ErrorClass.OVERLOADED,
        }
        return Classification(table.get(status, ErrorClass.SERVER_ERROR), status=status)

    def headroom(self, headers: Mapping[str, str], now: datetime) -> Headroom | None:
        return None


def make_config(n_providers: int = 2, n_models: int = 2, extra: str = "", probes: str = "") -> Config:
    lines = ["providers:"]
    for p in range(n_providers):
        lines += [f"  - id: p{p}", "    adapter: openai", f"    base_url: http://127.0.0.1:9/p{p}/v1", "    models:"]
        lines += [f"      - {{name: m{m}, price: {{input: 1.0, output: 2.0}}}}" for m in range(n_models)]
    lines.append(
        probes
        or "probes: {interval: 10s, jitter: 0.2, timeout: 2s, concurrency: 3, kinds: {catalogue: {interval: 60s}, completion: {interval: 30s}}}"
    )
    return parse_config("\n".join(lines) + "\n" + extra, env={})
