"""The one small Protocol every provider adapter meets. Adapters translate; they never decide.

An adapter builds upstream requests from the OpenAI chat shape, translates responses and stream events
back to the OpenAI shape, classifies errors into error classes (with scope) and reads capacity headers.
Which target to try next belongs to the ranker and the data-plane proxy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

import aiohttp

from controlplane.config import ProviderConfig
from controlplane.domain import Classification, Headroom

__all__ = [
    "UpstreamRequest",
    "StreamItem",
    "StreamTranslator",
    "ModelListing",
    "CompletionProbeResult",
    "ProbeAdapter",
    "Adapter",
    "Credentialed",
    "prepare_credentials",
]


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """Everything needed to send one upstream call; `body` is already-serialised JSON bytes."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class StreamItem:
    """One translated unit of an upstream stream.

    kind: `chunk` (an OpenAI `chat.completion.chunk` dict in `chunk`), `keepalive` (ping, comment, role-only
    preamble: never re-arms a no-progress watchdog), `done` (the upstream's terminator: a clean end),
    `error` (a mid-stream error: `classification` says which class).
    `content` is True when the chunk carries content-bearing delta (text, tool calls, reasoning): TTFT.
    """

    kind: Literal["chunk", "keepalive", "done", "error"]
    chunk: dict[str, Any] | None = None
    content: bool = False
    classification: Classification | None = None
    usage: dict[str, int] | None = None
    raw: bytes | None = None  # the upstream's own SSE event bytes when no translation was needed (pass-through)
    finish_reason: str | None = None


class StreamTranslator(Protocol):
    """Stateful per-stream translator: feed raw bytes as they arrive, get translated items back."""

    def feed(self, data: bytes) -> list[StreamItem]: ...

    def close(self) -> list[StreamItem]:
        """The upstream closed the connection; returns an `error` (bad_response) item if no terminator was seen."""
        ...


@dataclass(frozen=True, slots=True)
class ModelListing:
    models: list[str]  # model ids as the provider names them (Gemini: without the `models/` prefix)
    headroom: Headroom | None = None
    # Listed models this account cannot use from here, with why (Bedrock's availability: region, authorisation).
    unavailable: dict[str, Classification] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CompletionProbeResult:
    """Outcome of the cheapest real inference call (streamed when possible)."""

    classification: Classification
    latency_s: float | None = None  # send → end
    ttft_s: float | None = None  # send → first content-bearing delta
    tokens_per_s: float | None = None
    headroom: Headroom | None = None
    output_tokens: int | None = None
    input_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ProbeAdapter(Protocol):
    """What probes (and the probe scheduler) use of an API family: listing, a minimal completion, one
    request with its classification and headroom. Test doubles implement this much."""

    name: str

    def build_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        """Upstream request for an OpenAI-shaped chat body (`model` is the provider's model name)."""
        ...

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Classification:
        """Error class, scope and retry hints for one upstream answer (2xx bodies too: empty 200 → bad_response)."""
        ...

    def headroom(self, headers: Mapping[str, str], now: datetime) -> Headroom | None:
        """Capacity headroom from rate-limit headers; None when the provider sends none."""
        ...

    async def list_models(
        self, session: aiohttp.ClientSession, provider: ProviderConfig, *, timeout: float
    ) -> ModelListing:
        """The provider's catalogue (follows pagination). Raises ProviderError, classified."""
        ...

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
        """A minimal streamed completion measuring latency, TTFT, tokens/s and headroom; never raises for provider faults."""
        ...


class Adapter(ProbeAdapter, Protocol):
    """One API family (openai-compatible, anthropic, gemini): the probe side plus translating answers."""

    def parse_response(self, body: bytes, *, model: str) -> dict[str, Any]:
        """Translate a successful non-streaming upstream body into an OpenAI `chat.completion` dict.

        Raises ProviderError(bad_response) on garbage (HTML, truncated JSON, empty 200, missing fields)."""
        ...

    def stream_translator(self, *, model: str) -> StreamTranslator:
        """A fresh translator for one upstream stream, producing OpenAI `chat.completion.chunk`s."""
        ...


@runtime_checkable
class Credentialed(Protocol):
    """An adapter whose credentials are fetched or refreshed over the network (SigV4 keys from the AWS chain,
    Google and Entra ID tokens). `build_request` is synchronous and signs with what `prepare` left ready, so
    every caller awaits `prepare` first; the fetch runs off the event loop."""

    async def prepare(self, provider: ProviderConfig) -> None:
        """Have fresh credentials for `provider`; raises ProviderError (auth, connect) when none can be had."""
        ...


_CREDENTIALED: dict[type, bool] = {}  # per adapter class: a Protocol isinstance costs microseconds per request


async def prepare_credentials(adapter: object, provider: ProviderConfig) -> None:
    """`adapter.prepare(provider)` for adapters that need it; nothing for key-in-header families."""
    kind = type(adapter)
    needs = _CREDENTIALED.get(kind)
    if needs is None:
        needs = _CREDENTIALED[kind] = isinstance(adapter, Credentialed)
    if needs:
        await adapter.prepare(provider)  # type: ignore[attr-defined]  # checked against Credentialed above
