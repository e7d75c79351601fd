"""Synthetic completion probe: a minimal streamed completion measuring latency, TTFT, tokens/s and headroom.

It costs money, so it reserves its worst-case cost against the provider's daily probe budget first (skipped
when spent). Reasoning models get `reasoning_max_tokens`: a 1-token limit makes some of them fail while they
serve real traffic fine. An embedding model (`kind: embedding`) is probed with the cheapest call it serves, a
one-word embedding, whose latency ranks it as a completion's does.
"""

from __future__ import annotations

from adapters.embeddings import embeddings_adapter, probe_body
from controlplane.domain import Classification, ErrorClass, Observation, TargetRef
from controlplane.errors import ProviderError
from probes._http import exchange
from probes.budget import estimate_cost, estimate_prompt_tokens
from probes.context import ProbeContext, ProbeSkipped

__all__ = ["probe", "embedding_probe", "token_budget"]

KIND = "completion"


def token_budget(ctx: ProbeContext) -> int:
    """Output tokens allowed for this probe: larger for reasoning models."""
    if ctx.model is not None and ctx.model.reasoning:
        return ctx.completion.reasoning_max_tokens
    return ctx.completion.max_tokens


async def embedding_probe(target: TargetRef, ctx: ProbeContext) -> list[Observation]:
    """A one-word embedding: classified like any answer; its latency is the target's serving latency."""
    price = ctx.model.price if ctx.model is not None else None
    reservation = None
    if ctx.budget is not None and price is not None:
        reservation = ctx.budget.try_reserve(
            ctx.provider.id, estimate_cost(price, 1, 0), ctx.provider.probe_budget_usd_per_day
        )
        if reservation is None:
            raise ProbeSkipped("budget")
    adapter = embeddings_adapter(ctx.adapter)
    req = adapter.build_request(ctx.provider, target.model, probe_body(target.model), stream=False)
    got = await exchange(ctx.session, req.method, req.url, timeout=ctx.timeout, headers=req.headers, body=req.body)
    if reservation is not None and ctx.budget is not None:
        ctx.budget.settle(reservation, None)
    headroom = None
    if got.failure is not None:
        c = got.failure
    else:
        assert got.status is not None
        c = adapter.classify(got.status, got.headers, got.body)
        if c.ok:
            try:
                adapter.parse_response(got.body, model=target.model)
            except ProviderError as exc:
                c = exc.classification
            except Exception as exc:  # an odd answer is a bad answer, never a crashed probe
                c = Classification(ErrorClass.BAD_RESPONSE, status=got.status, detail=type(exc).__name__)
        h = adapter.headroom(got.headers, ctx.clock.wall())
        headroom = h.ratio if h is not None else None
    return [
        Observation.from_classification(
            target.key,
            c,
            kind=KIND,
            at=ctx.clock.wall(),
            latency_s=got.latency_s,
            ttft_s=got.latency_s,
            headroom=headroom,
            extra={"embedding": True},
        )
    ]


async def probe(target: TargetRef, ctx: ProbeContext) -> list[Observation]:
    if ctx.model is not None and ctx.model.kind == "embedding":
        return await embedding_probe(target, ctx)
    max_tokens = token_budget(ctx)
    prompt = ctx.completion.prompt
    reservation = None
    price = ctx.model.price if ctx.model is not None else None
    if ctx.budget is not None and price is not None:
        worst = estimate_cost(price, estimate_prompt_tokens(prompt), max_tokens)
        reservation = ctx.budget.try_reserve(ctx.provider.id, worst, ctx.provider.probe_budget_usd_per_day)
        if reservation is None:
            raise ProbeSkipped("budget")
    result = None
    charged = 0.0
    try:
        result = await ctx.adapter.probe_completion(
            ctx.session, ctx.provider, target.model, prompt=prompt, max_tokens=max_tokens, timeout=ctx.timeout
        )
    finally:
        if reservation is not None and ctx.budget is not None:
            actual = None
            if (
                result is not None
                and price is not None
                and (result.input_tokens is not None or result.output_tokens is not None)
            ):
                actual = estimate_cost(price, result.input_tokens or 0, result.output_tokens or 0)
            charged = ctx.budget.settle(reservation, actual)
    extra: dict[str, object] = {"max_tokens": max_tokens}
    if result.output_tokens is not None:
        extra["output_tokens"] = result.output_tokens
    if result.input_tokens is not None:
        extra["input_tokens"] = result.input_tokens
    if reservation is not None:
        extra["cost_usd"] = round(charged, 8)
    headroom = result.headroom.ratio if result.headroom is not None else None
    return [
        Observation.from_classification(
            target.key,
            result.classification,
            kind=KIND,
            at=ctx.clock.wall(),
            latency_s=result.latency_s,
            ttft_s=result.ttft_s,
            tokens_per_s=result.tokens_per_s,
            headroom=headroom,
            extra=extra,
        )
    ]
