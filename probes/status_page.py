"""Status page probe: a provider's Atlassian Statuspage `summary.json` → a provider-level hint per target.

The hint never opens or withdraws anything (the breaker treats kind `status_page` as neutral): a degraded
component or an open incident lowers the target's headroom hint and says so in `detail`; "operational" never
overrides failing probes. A feed that is down or garbled leaves targets unaffected (no observation).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from controlplane.domain import Observation, TargetRef
from probes.context import ProbeContext, ProbeSkipped

__all__ = ["probe", "assess", "SEVERITY", "HEADROOM_HINT"]

KIND = "status_page"
MAX_BYTES = 2 * 1024 * 1024

# Statuspage component status and incident impact, as one severity scale.
SEVERITY: dict[str, int] = {
    "operational": 0,
    "none": 0,
    "under_maintenance": 1,
    "degraded_performance": 1,
    "minor": 1,
    "partial_outage": 2,
    "major": 2,
    "major_outage": 3,
    "critical": 3,
}
# The headroom hint for each severity: a de-ranking nudge, never zero (zero would read as "full").
HEADROOM_HINT: dict[int, float | None] = {0: None, 1: 0.7, 2: 0.4, 3: 0.1}
_LEVEL = {0: "operational", 1: "degraded", 2: "partial_outage", 3: "major_outage"}


def assess(summary: dict[str, Any], components: list[str]) -> tuple[int, str]:
    """Severity (0-3) and a short reason, for the given component names (all components when empty)."""
    wanted = {c.lower() for c in components}
    worst, why = 0, "operational"
    comps = summary.get("components") or []
    for c in comps if isinstance(comps, list) else []:
        if not isinstance(c, dict):
            continue
        name = str(c.get("name", ""))
        if wanted and name.lower() not in wanted:
            continue
        sev = SEVERITY.get(str(c.get("status", "")), 0)
        if sev > worst:
            worst, why = sev, f"{name}: {c.get('status')}"
    incidents = summary.get("incidents") or []
    for inc in incidents if isinstance(incidents, list) else []:
        if not isinstance(inc, dict) or inc.get("status") in ("resolved", "postmortem"):
            continue
        touched_by = inc.get("components")  # a list of dicts on a real page; anything else touches nothing we know
        touched = (
            {str(c.get("name", "")).lower() for c in touched_by if isinstance(c, dict)}
            if isinstance(touched_by, list)
            else set()
        )
        if wanted and touched and not (touched & wanted):
            continue
        sev = SEVERITY.get(str(inc.get("impact", "")), 0)
        if sev > worst:
            worst, why = sev, f"incident ({inc.get('impact')}): {str(inc.get('name', ''))[:120]}"
    if not wanted and worst == 0:  # no component named: the page-level indicator is all we have
        status = summary.get("status")
        indicator = str(status.get("indicator", "none")) if isinstance(status, dict) else "none"
        if SEVERITY.get(indicator, 0) > 0:
            worst, why = SEVERITY[indicator], f"page indicator {indicator}"
    return worst, why


async def _fetch(ctx: ProbeContext, url: str) -> dict[str, Any] | None:
    try:
        async with asyncio.timeout(ctx.timeout):
            async with ctx.session.get(url, headers={"Accept": "application/json"}) as resp:
                if resp.status != 200:
                    ctx.logger.info("status page of %s answered %s", ctx.provider.id, resp.status)
                    return None
                body = await resp.content.read(MAX_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        ctx.logger.info("status page of %s unreachable: %s", ctx.provider.id, type(exc).__name__)
        return None
    try:
        data = json.loads(body) if len(body) <= MAX_BYTES else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        ctx.logger.info("status page of %s is not Statuspage JSON", ctx.provider.id)
        return None
    return data


async def probe(target: TargetRef, ctx: ProbeContext) -> list[Observation]:
    url = ctx.provider.status_page
    if not url:
        raise ProbeSkipped("not_applicable")
    summary = await _fetch(ctx, url)
    if summary is None:
        return []  # the feed being down says nothing about the targets
    at = ctx.clock.wall()
    out: list[Observation] = []
    for t in ctx.report_targets(target):
        model = ctx.provider.model(t.model)
        components = (
            [model.status_component]
            if model is not None and model.status_component
            else list(ctx.provider.status_components)
        )
        severity, why = assess(summary, components)
        out.append(
            Observation.success(
                t.key,
                kind=KIND,
                at=at,
                headroom=HEADROOM_HINT[severity],
                detail=f"status page: {why}",
                extra={"status_level": _LEVEL[severity], "severity": severity},
            )
        )
    return out
