"""One small capped HTTP exchange for probes that call endpoints the Adapter protocol does not cover
(status pages, /health, token counting). Transport faults come back classified, never raised."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

from adapters.calls import wire_url
from adapters.transport_faults import TRANSPORT_FAULTS, transport_fault
from controlplane.domain import Classification, ErrorClass

__all__ = ["Exchange", "exchange", "MAX_BYTES"]

MAX_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Exchange:
    status: int | None  # None: no HTTP answer (see `failure`)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    latency_s: float = 0.0
    failure: Classification | None = None  # transport fault (connect / timeout / oversized body)


async def exchange(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    timeout: float,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Exchange:
    started = time.perf_counter()
    answered = False
    try:
        async with asyncio.timeout(timeout):
            async with session.request(
                method, wire_url(url), headers=headers, data=body, allow_redirects=False
            ) as resp:
                answered = True
                data = await resp.content.read(MAX_BYTES + 1)
                hdrs = {k.lower(): v for k, v in resp.headers.items()}
                status = resp.status
    except TRANSPORT_FAULTS as exc:  # the one table probes and live traffic share (adapters/transport_faults.py)
        detail = f"no answer within {timeout:g}s" if isinstance(exc, TimeoutError) else None
        return Exchange(
            None,
            latency_s=time.perf_counter() - started,
            failure=transport_fault(exc, answer_started=answered, detail=detail),
        )
    latency = time.perf_counter() - started
    if len(data) > MAX_BYTES:
        return Exchange(
            status, hdrs, b"", latency, Classification(ErrorClass.BAD_RESPONSE, status=status, detail="body too large")
        )
    return Exchange(status, hdrs, data, latency)
