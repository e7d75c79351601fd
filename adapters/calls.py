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
from yarl import URL

from adapters.base import CompletionProbeResult, UpstreamRequest, prepare_credentials
from adapters.headers import lower_headers
from adapters.stream_judge import StreamJudge
from adapters.transport_faults import TRANSPORT_FAULTS, BodyTooLarge, transport_fault
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
    "wire_url",
]

MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Fetched:
    """One upstream answer: status, lower-cased headers and the (capped) body."""

    status: int
    headers: dict[str, str]
    body: bytes


def wire_url(url: str) -> str | URL:
    """The URL as aiohttp must send it: already percent-encoded parts kept as they are. yarl would decode
    `%3A` back to `:`, and a SigV4 signature covers the path exactly as built (Bedrock model ids)."""
    return URL(url, encoded=True) if "%" in url else url


def transport_classification(exc: BaseException, *, after_headers: bool = False) -> Classification:
    """The class of a transport failure (adapters/transport_faults.py): before the answer started `connect` or
    `timeout`, after it `bad_response` (cut off)."""
    return transport_fault(exc, answer_started=after_headers)


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for data in resp.content.iter_any():
        size += len(data)
        if size > max_bytes:
            raise BodyTooLarge(f"body over {max_bytes} bytes")
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
                req.method, wire_url(req.url), headers=req.headers, data=req.body, allow_redirects=False
            ) as resp:
                after_headers = True
                body = await _read_capped(resp, max_bytes)
                return Fetched(resp.status, lower_headers(resp.headers), body)
    except TRANSPORT_FAULTS as exc:
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
    """A minimal streamed completion: latency, TTFT (first content-bearing delta), tokens/s, headroom. A cloud
    adapter's credentials are fetched first (adapters.base.Credentialed), as for a live attempt."""
    try:
        await prepare_credentials(adapter, provider)
    except ProviderError as exc:  # no token, no signature: classified (auth, connect, …), never raised
        return CompletionProbeResult(exc.classification)
    try:
        req = adapter.build_request(provider, model, probe_body(model, prompt, max_tokens), stream=True)
    except ValueError as exc:  # a config problem (bad base URL, …): nothing was sent
        return CompletionProbeResult(Classification(ErrorClass.CLIENT_ERROR, detail=short_detail(str(exc))))
    start = monotonic()
    first: float | None = None
    last: float | None = None
    headers: Mapping[str, str] = {}
    result: Classification | None = None
    judge: StreamJudge | None = None
    after_headers = False
    try:
        async with asyncio.timeout(timeout):
            async with session.request(
                req.method, wire_url(req.url), headers=req.headers, data=req.body, allow_redirects=False
            ) as resp:
                after_headers = True
                headers = lower_headers(resp.headers)
                if not 200 <= resp.status < 300:
                    body = await _read_capped(resp, MAX_BODY_BYTES)
                    result = adapter.classify(resp.status, headers, body)
                else:
                    # The same judge as live traffic (adapters/stream_judge.py): same bytes, same class.
                    judge = StreamJudge(adapter.stream_translator(model=model), status=resp.status)
                    size = 0
                    try:
                        async for data in resp.content.iter_any():
                            size += len(data)
                            if size > MAX_BODY_BYTES:
                                raise BodyTooLarge(f"stream over {MAX_BODY_BYTES} bytes")
                            for item in judge.feed(data):
                                if item.content:
                                    last = monotonic()
                                    first = last if first is None else first
                            if judge.verdict is not None:
                                break
                    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                        if isinstance(exc, TimeoutError):
                            raise
                        judge.close(cut=exc)  # broke off mid-stream: the judge says what was missing
                    else:
                        judge.close()
                    result = judge.verdict
    except TRANSPORT_FAULTS as exc:
        result = transport_fault(exc, answer_started=after_headers)
    usage = judge.usage if judge is not None else None
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
