"""Probe kinds: one module each, one async function `probe(target, ctx) -> list[Observation]`.

`PROBE_KINDS` maps each kind name (the keys of `probes.kinds` in turnout.yaml) to its function; its keys equal
`controlplane.config.PROBE_KINDS_KNOWN`. `applies()` says whether a kind makes sense for a provider at all, so
the scheduler does not plan runs that could only be skipped.
"""

from __future__ import annotations

from controlplane.config import ProviderConfig
from probes import catalogue, completion, count_tokens, health, status_page
from probes.context import PROVIDER_LEVEL_KINDS, ProbeContext, ProbeFn, ProbeSkipped

__all__ = ["PROBE_KINDS", "PROVIDER_LEVEL_KINDS", "ProbeContext", "ProbeFn", "ProbeSkipped", "applies"]

PROBE_KINDS: dict[str, ProbeFn] = {
    "catalogue": catalogue.probe,
    "completion": completion.probe,
    "status_page": status_page.probe,
    "count_tokens": count_tokens.probe,
    "health": health.probe,
}


def applies(kind: str, provider: ProviderConfig) -> bool:
    """Can `kind` say anything about this provider's targets?"""
    if kind == "status_page":
        return bool(provider.status_page)
    if kind == "count_tokens":
        return provider.adapter in count_tokens.SUPPORTED_ADAPTERS
    if kind == "health":
        return health.is_local(provider)
    if kind == "catalogue" and provider.adapter in ("azure", "vertex"):
        # Azure lists models, not deployments; Vertex has no v1 publisher listing: completions and token counts
        # see a missing deployment or model instead.
        return False
    return kind in PROBE_KINDS
