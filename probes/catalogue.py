"""Catalogue probe: is each target's model still listed by its provider?

One catalogue call per provider answers for all of its targets (a provider-level kind). A model missing from
the listing is `model_gone` with code `catalogue_drop`; a failed listing gives every target its class
(auth and quota reach the whole credential, region blocks the egress: the adapter's scope says which).
"""

from __future__ import annotations

import time

from controlplane.domain import ErrorClass, Observation, TargetRef
from controlplane.errors import ProviderError
from probes.context import ProbeContext

__all__ = ["SEES_REGION_BLOCKS", "probe", "listed"]

# Adapters whose listing says, per model, whether this account may use it from here (Bedrock's availability
# call): their catalogue probe sees a region block, so it may recheck one seen on a call (controlplane/breaker.py).
SEES_REGION_BLOCKS: frozenset[str] = frozenset({"bedrock"})

KIND = "catalogue"


def _norm(name: str) -> str:
    return name.removeprefix("models/").strip().lower()


def listed(model: str, names: set[str]) -> bool:
    """Is `model` in a catalogue? Tolerates Gemini's `models/` prefix and Ollama's implicit `:latest` tag."""
    m = _norm(model)
    return m in names or (":" not in m and f"{m}:latest" in names)


async def probe(target: TargetRef, ctx: ProbeContext) -> list[Observation]:
    """List the provider's models once; one observation per reported target."""
    targets = ctx.report_targets(target)
    started = time.perf_counter()
    try:
        listing = await ctx.adapter.list_models(ctx.session, ctx.provider, timeout=ctx.timeout)
    except ProviderError as exc:
        at = ctx.clock.wall()
        return [Observation.from_classification(t.key, exc.classification, kind=KIND, at=at) for t in targets]
    latency = time.perf_counter() - started
    at = ctx.clock.wall()
    names = {_norm(n) for n in listing.models}
    if not names:  # an empty 200 (cold start, proxy page) says nothing about any model: never withdraw on it
        return [
            Observation.failure(
                t.key,
                ErrorClass.BAD_RESPONSE,
                kind=KIND,
                at=at,
                latency_s=latency,
                status=200,
                code="empty_catalogue",
                detail="the model list came back empty",
            )
            for t in targets
        ]
    headroom = listing.headroom.ratio if listing.headroom is not None else None
    out: list[Observation] = []
    for t in targets:
        why = listing.unavailable.get(t.model)
        if why is not None:  # listed, but this account may not use it from here (Bedrock availability)
            out.append(Observation.from_classification(t.key, why, kind=KIND, at=at, latency_s=latency))
        elif listed(t.model, names):
            out.append(Observation.success(t.key, kind=KIND, at=at, latency_s=latency, status=200, headroom=headroom))
        else:
            out.append(
                Observation.failure(
                    t.key,
                    ErrorClass.MODEL_GONE,
                    kind=KIND,
                    at=at,
                    latency_s=latency,
                    status=200,
                    code="catalogue_drop",
                    detail=f"{t.model} is not in {ctx.provider.id}'s model list ({len(names)} models listed)",
                )
            )
    return out
