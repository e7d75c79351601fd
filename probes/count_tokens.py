"""Token-counting probe (Anthropic `/v1/messages/count_tokens`, Gemini `:countTokens`, Bedrock
`/model/{id}/count-tokens`, Vertex's two publishers): a free call that
exercises auth, region and the model's existence on the inference path, without generating anything.

The request is derived from the adapter's own chat request (same URL base and auth headers), so base-URL
conventions live in one place; the answer is classified by the adapter.
"""

from __future__ import annotations

import json
from typing import Protocol, runtime_checkable

from adapters.base import UpstreamRequest, prepare_credentials
from controlplane.config import ProviderConfig
from controlplane.domain import Classification, ErrorClass, Observation, TargetRef
from controlplane.errors import ProviderError
from probes._http import exchange
from probes.context import ProbeContext, ProbeSkipped

__all__ = ["probe", "count_request"]

KIND = "count_tokens"
SUPPORTED_ADAPTERS = frozenset({"anthropic", "gemini", "bedrock", "vertex"})


@runtime_checkable
class _CountsTokens(Protocol):
    """The cloud adapters build their own count call (its URL and signature differ from the chat request's)."""

    def count_request(self, provider: ProviderConfig, model: str, prompt: str) -> UpstreamRequest: ...


def count_request(ctx: ProbeContext, model: str) -> tuple[str, dict[str, str], bytes]:
    """URL, headers and body of the count call; ProbeSkipped when the adapter has no token counting."""
    if ctx.provider.adapter not in SUPPORTED_ADAPTERS:
        raise ProbeSkipped("not_applicable")
    if isinstance(ctx.adapter, _CountsTokens):
        req = ctx.adapter.count_request(ctx.provider, model, ctx.completion.prompt)
        return req.url, dict(req.headers), req.body or b""
    chat = {"model": model, "messages": [{"role": "user", "content": ctx.completion.prompt}], "max_tokens": 1}
    req = ctx.adapter.build_request(ctx.provider, model, chat, stream=False)
    url = req.url.split("?", 1)[0] if ctx.provider.adapter == "anthropic" else req.url
    if ctx.provider.adapter == "anthropic" and url.endswith("/messages"):
        body = {"model": model, "messages": [{"role": "user", "content": ctx.completion.prompt}]}
        return url + "/count_tokens", dict(req.headers), json.dumps(body).encode()
    if ctx.provider.adapter == "gemini" and ":generateContent" in url:
        body = {"contents": [{"role": "user", "parts": [{"text": ctx.completion.prompt}]}]}
        return url.replace(":generateContent", ":countTokens"), dict(req.headers), json.dumps(body).encode()
    raise ProbeSkipped("not_applicable")


async def probe(target: TargetRef, ctx: ProbeContext) -> list[Observation]:
    try:
        await prepare_credentials(ctx.adapter, ctx.provider)
    except ProviderError as exc:
        return [Observation.from_classification(target.key, exc.classification, kind=KIND, at=ctx.clock.wall())]
    url, headers, body = count_request(ctx, target.model)
    if not any(k.lower() == "content-type" for k in headers):
        headers = {**headers, "Content-Type": "application/json"}
    ex = await exchange(ctx.session, "POST", url, timeout=ctx.timeout, headers=headers, body=body)
    at = ctx.clock.wall()
    if ex.failure is not None:
        return [Observation.from_classification(target.key, ex.failure, kind=KIND, at=at, latency_s=ex.latency_s)]
    assert ex.status is not None
    c = ctx.adapter.classify(ex.status, ex.headers, ex.body)
    tokens = None
    if c.ok:
        try:
            data = json.loads(ex.body)
            tokens = (
                data.get("input_tokens", data.get("totalTokens", data.get("inputTokens")))
                if isinstance(data, dict)
                else None
            )
        except ValueError:
            tokens = None
        if not isinstance(tokens, int):
            c = Classification(
                ErrorClass.BAD_RESPONSE,
                status=ex.status,
                code="no_token_count",
                detail="count answer without a token count",
            )
    headroom = ctx.adapter.headroom(ex.headers, at)
    extra: dict[str, object] = {"input_tokens": tokens} if isinstance(tokens, int) else {}
    return [
        Observation.from_classification(
            target.key,
            c,
            kind=KIND,
            at=at,
            latency_s=ex.latency_s,
            headroom=headroom.ratio if headroom else None,
            extra=extra,
        )
    ]
