"""Health probe for self-hosted servers: vLLM and llama.cpp `GET /health`, Ollama `GET /api/version`.

A provider-level kind: one call answers for every target on that server. 200 is `ok`; anything else
(llama.cpp answers 503 "Loading model" while it starts) is `connect` with code `not_ready`: the server is
there but cannot serve yet.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from controlplane.config import ProviderConfig
from controlplane.domain import Classification, ErrorClass, Observation, TargetRef
from probes._http import exchange
from probes.context import ProbeContext, ProbeSkipped

__all__ = ["probe", "is_local", "health_url"]

KIND = "health"
_LOCAL_FLAVORS = frozenset({"vllm", "llamacpp", "llama.cpp", "ollama", "local"})


def is_local(provider: ProviderConfig) -> bool:
    """A self-hosted server: a local flavor, or a loopback / private / `localhost` host."""
    if (provider.flavor or "").lower() in _LOCAL_FLAVORS:
        return True
    host = urlsplit(provider.base_url).hostname or ""
    if host == "localhost" or host.endswith(".local") or host.endswith(".internal"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private


def health_url(provider: ProviderConfig) -> str:
    parts = urlsplit(provider.base_url)
    root = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/").removesuffix("/v1")
    if (provider.flavor or "").lower() == "ollama" or parts.port == 11434:
        return f"{root}{path}/api/version"
    return f"{root}{path}/health"


async def probe(target: TargetRef, ctx: ProbeContext) -> list[Observation]:
    if not is_local(ctx.provider):
        raise ProbeSkipped("not_applicable")
    headers = {}
    if ctx.provider.api_key is not None:  # llama.cpp --api-key / vLLM --api-key guard /health too
        headers["Authorization"] = f"Bearer {ctx.provider.api_key.get_secret_value()}"
    ex = await exchange(ctx.session, "GET", health_url(ctx.provider), timeout=ctx.timeout, headers=headers)
    at = ctx.clock.wall()
    if ex.failure is not None:
        c = ex.failure
    elif ex.status == 200:
        return [
            Observation.success(t.key, kind=KIND, at=at, latency_s=ex.latency_s, status=200)
            for t in ctx.report_targets(target)
        ]
    else:
        loading = b"loading" in ex.body.lower()
        c = Classification(
            ErrorClass.CONNECT,
            status=ex.status,
            code="not_ready",
            detail="server is loading the model" if loading else f"health answered {ex.status}",
        )
    return [
        Observation.from_classification(t.key, c, kind=KIND, at=at, latency_s=ex.latency_s)
        for t in ctx.report_targets(target)
    ]
