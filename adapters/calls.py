"""The probe calls shared by the three families: one capped HTTP exchange, and one streamed tiny completion.

Every provider fault comes back classified: transport exceptions become `connect` or `timeout`, a body
over 10 MB or cut off mid-transfer becomes `bad_response`. `fetch` raises ProviderError for those;
`probe_completion` never raises for provider faults, it returns them in the result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp

from adapters.base import CompletionProbeResult, UpstreamRequest
from adapters.headers import lower_headers
from adapters.wire.common import short_detail
from controlplane.domain import Classification, ErrorClass
from controlplane.errors import ProviderError

if TYPE_CHECKING:
    from adapters.base import Adapter
    from controlplane.config import ProviderConfig

__all__ = [
    "MAX_BODY_BYTES",
    "Fetched",
    "fetch",
    "transport_classification",
    "probe_completion",
    "probe_body",
    "StreamedProbe",
]

MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Fetched:
    """One upstream answer: status, lower-cased headers and the (capped) body."""

    status: int
    headers: dict[str, str]
    body: bytes


class _TooLarge(Exception):
    pass


def transport_classification(exc: BaseException, *, after_headers: bool = False) -> Classification:
    """The class of a transport failure: before the answer started `connect`/`timeout`, after it `bad_response`."""
    name = type(exc).__name__
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError and aiohttp's ServerTimeoutError are both this
        return Classification(ErrorClass.TIMEOUT, code="timeout", detail=f"no answer in time ({name})")
    if isinstance(exc, _TooLarge):
        return Classification(ErrorClass.BAD_RESPONSE, code="too_large", detail=f"body over {MAX_BODY_BYTES} bytes")
    if after_headers and isinstance(
        exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError | aiohttp.ClientOSError
    ):
        return Classification(ErrorClass.BAD_RESPONSE, code="truncated", detail=short_detail(f"body cut off: {name}"))
    if isinstance(exc, aiohttp.ClientResponseError):
        return Classification(
            ErrorClass.BAD_RESPONSE, code="bad_http", detail=short_detail(f"malformed HTTP answer: {name}")
        )
    if isinstance(exc, aiohttp.InvalidURL):
        return Classification(ErrorClass.CONNECT, code="invalid_url", detail="invalid upstream URL")
    return Classification(ErrorClass.CONNECT, code="connect", detail=short_detail(f"{name}: {exc}"))


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for data in resp.content.iter_any():
        size += len(data)
        if size > max_bytes:
            raise _TooLarge
        chunks.append(data)
    return b"".join(chunks)


async def fetch(
    session: aiohttp.ClientSession,
    req: UpstreamRequest,
    *,
    timeout: float,
    provider_id: str,
    max_bytes: int = MAX_BODY_BYTES,
) -> Fetched:
    """Send `req` and read the whole answer (any status). Raises ProviderError for transport faults only."""
    after_headers = False
    try:
        async with asyncio.timeout(timeout):
            async with session.request(
                req.method, req.url, headers=req.headers, data=req.body, allow_redirects=False
            ) as resp:
                after_headers = True
                body = await _read_capped(resp, max_bytes)
                return Fetched(resp.status, lower_headers(resp.headers), body)
    except (aiohttp.ClientError, OSError, TimeoutError, _TooLarge) as exc:
        raise ProviderError(provider_id, None, transport_classification(exc, after_headers=after_headers)) from exc


def probe_body(model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    """The OpenAI-shaped body of the cheapest streamed completion (each adapter translates it)."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def probe_completion(
    adapter: Adapter,
    session: aiohttp.ClientSession,
    provider: ProviderConfig,
    model: str,
    *,
    prompt: str,
    max_tokens: int,
    timeout: float,
    monotonic: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CompletionProbeResult:
    """A minimal streamed completion: latency, TTFT (first content-bearing delta), tokens/s, headroom."""
    try:
        req = adapter.build_request(provider, model, probe_body(model, prompt, max_tokens), stream=True)
    except ValueError as exc:  # a config problem (bad base URL, …): nothing was sent
        return CompletionProbeResult(Classification(ErrorClass.CLIENT_ERROR, detail=short_detail(str(exc))))
    start = monotonic()
    first: float | None = None
    last: float | None = None
    usage: dict[str, int] | None = None
    headers: Mapping[str, str] = {}
    result: Classification | None = None
    after_headers = False
    finished = False  # a finish reason was seen: an answer without content (e.g. cut at max_tokens) is still an answer
    try:
        async with asyncio.timeout(timeout):
            async with session.request(
                req.method, req.url, headers=req.headers, data=req.body, allow_redirects=False
            ) as resp:
                after_headers = True
                headers = lower_headers(resp.headers)
                if not 200 <= resp.status < 300:
                    body = await _read_capped(resp, MAX_BODY_BYTES)
                    result = adapter.classify(resp.status, headers, body)
                else:
                    translator = adapter.stream_translator(model=model)
                    size = 0
                    async for data in resp.content.iter_any():
                        size += len(data)
                        if size > MAX_BODY_BYTES:
                            raise _TooLarge
                        for item in translator.feed(data):
                            t = monotonic()
                            if item.usage:
                                usage = item.usage
                            finished = finished or item.finish_reason is not None
                            if item.kind == "chunk" and item.content:
                                first = t if first is None else first
                                last = t
                            elif item.kind == "error":
                                result = item.classification
                            elif item.kind == "done" and first is None and not finished:
                                # provider-semantics.md §6: an empty 200 (no content, no finish reason) is bad_response
                                result = Classification(
                                    ErrorClass.BAD_RESPONSE,
                                    status=resp.status,
                                    code="empty_completion",
                                    detail="stream ended with no content and no finish reason",
                                )
                            elif item.kind == "done":
                                result = Classification(ErrorClass.OK, status=resp.status)
                        if result is not None:
                            break
                    if result is None:
                        for item in translator.close():
                            if item.usage:
                                usage = item.usage
                            if item.kind == "error":
                                result = item.classification
                    if result is None:
                        result = Classification(ErrorClass.OK, status=resp.status)
    except (aiohttp.ClientError, OSError, TimeoutError, _TooLarge) as exc:
        result = transport_classification(exc, after_headers=after_headers)
    end = monotonic()
    assert result is not None
    out_tokens = usage.get("completion_tokens") if usage else None
    in_tokens = usage.get("prompt_tokens") if usage else None
    tps = None
    if out_tokens and out_tokens > 1 and first is not None and last is not None and last > first:
        tps = (out_tokens - 1) / (last - first)
    return CompletionProbeResult(
        classification=result,
        latency_s=end - start,
        ttft_s=None if first is None else first - start,
        tokens_per_s=tps,
        headroom=adapter.headroom(headers, now()) if headers else None,
        output_tokens=out_tokens,
        input_tokens=in_tokens,
    )


class StreamedProbe:
    """Adapter mixin: `probe_completion` as the shared streamed minimal completion above."""

    async def probe_completion(
        self: Adapter,  # a mixin: the class it is mixed into is an Adapter
        session: aiohttp.ClientSession,
        provider: ProviderConfig,
        model: str,
        *,
        prompt: str,
        max_tokens: int,
        timeout: float,
    ) -> CompletionProbeResult:
        return await probe_completion(
            self, session, provider, model, prompt=prompt, max_tokens=max_tokens, timeout=timeout
        )
