"""Turnout's own view exported in the Atlassian Statuspage `summary.json` shape (`GET /api/v2/summary.json`).

Providers become component groups, targets their components; open breaker episodes (targets open,
half-open or withdrawn) become incidents. Existing status-page tooling can read it unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from controlplane.config import Config
from controlplane.domain import State
from controlplane.severity import (
    ComponentStatus,
    Severity,
    page_severity,
    provider_severity,
    route_severity,
    state_severity,
    statuspage_component,
    statuspage_indicator,
    target_severity,
)
from controlplane.table import Table, TableEntry

__all__ = ["SummaryResponse", "build_summary", "COMPONENT_STATUS"]

# Kept for readers that map one target's state (each state's severity comes from controlplane/severity.py).
COMPONENT_STATUS: dict[State, ComponentStatus] = {st: statuspage_component(state_severity(st)) for st in State}
_IMPACT = {State.HALF_OPEN: "minor", State.OPEN: "major", State.WITHDRAWN: "critical"}


class SummaryPage(BaseModel):
    id: str
    name: str
    url: str
    time_zone: str
    updated_at: str


class SummaryStatus(BaseModel):
    indicator: Literal["none", "minor", "major", "critical"]
    description: str


class SummaryComponent(BaseModel):
    id: str
    name: str
    status: ComponentStatus
    created_at: str
    updated_at: str
    position: int
    description: str | None
    showcase: bool
    start_date: str | None
    group_id: str | None
    page_id: str
    group: bool
    only_show_if_degraded: bool
    components: list[str] | None = None


class SummaryIncidentUpdate(BaseModel):
    id: str
    status: str
    body: str
    incident_id: str
    created_at: str
    updated_at: str
    display_at: str


class SummaryIncident(BaseModel):
    id: str
    name: str
    status: Literal["investigating", "identified", "monitoring", "resolved", "postmortem"]
    created_at: str
    updated_at: str
    monitoring_at: str | None
    resolved_at: str | None
    impact: Literal["none", "minor", "major", "critical"]
    shortlink: str
    started_at: str
    page_id: str
    incident_updates: list[SummaryIncidentUpdate]
    components: list[SummaryComponent]


class SummaryResponse(BaseModel):
    page: SummaryPage
    status: SummaryStatus
    components: list[SummaryComponent]
    incidents: list[SummaryIncident]
    scheduled_maintenances: list[dict[str, Any]]


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _cid(kind: str, key: str) -> str:
    return kind[0] + hashlib.sha1(key.encode()).hexdigest()[:11]  # stable ids across restarts


def build_summary(
    table: Table, config: Config, since: Callable[[str], str | None], *, page_url: str = ""
) -> dict[str, Any]:
    """The Statuspage summary for `table`; `since(target)` gives when the target entered its state (ISO), if known."""
    page_id = "turnout"
    updated = _iso(table.published_at)
    components: list[dict[str, Any]] = []
    incidents: list[dict[str, Any]] = []
    position = 1
    for p in config.providers:
        gid = _cid("group", p.id)
        entries: list[TableEntry] = [e for e in table.targets.values() if e.provider == p.id]
        children: list[dict[str, Any]] = []
        for e in sorted(entries, key=lambda x: x.target):
            status = statuspage_component(target_severity(e))
            comp = {
                "id": _cid("component", e.target),
                "name": e.target,
                "status": status,
                "created_at": updated,
                "updated_at": since(e.target) or updated,
                "position": position,
                "description": e.reason or None,
                "showcase": True,
                "start_date": None,
                "group_id": gid,
                "page_id": page_id,
                "group": False,
                "only_show_if_degraded": False,
            }
            position += 1
            children.append(comp)
            impact = _IMPACT.get(e.state)
            if impact is not None:
                started = since(e.target) or updated
                iid = _cid("incident", f"{e.target}@{started}")
                incidents.append(
                    {
                        "id": iid,
                        "name": f"{e.target} is {e.state}",
                        "status": "investigating" if e.state != State.HALF_OPEN else "monitoring",
                        "created_at": started,
                        "updated_at": updated,
                        "monitoring_at": updated if e.state == State.HALF_OPEN else None,
                        "resolved_at": None,
                        "impact": impact,
                        "shortlink": page_url,
                        "started_at": started,
                        "page_id": page_id,
                        "incident_updates": [
                            {
                                "id": _cid("update", f"{iid}:{updated}"),
                                "status": "investigating",
                                "body": e.reason or str(e.state),
                                "incident_id": iid,
                                "created_at": updated,
                                "updated_at": updated,
                                "display_at": updated,
                            }
                        ],
                        "components": [comp],
                    }
                )
        group_status = statuspage_component(provider_severity(entries))
        components.append(
            {
                "id": gid,
                "name": p.id,
                "status": group_status,
                "created_at": updated,
                "updated_at": updated,
                "position": position,
                "description": f"{p.adapter} provider, region {p.region}",
                "showcase": False,
                "start_date": None,
                "group_id": None,
                "page_id": page_id,
                "group": True,
                "only_show_if_degraded": False,
                "components": [c["id"] for c in children],
            }
        )
        position += 1
        components.extend(children)
    indicator = statuspage_indicator(table)
    down = sorted(name for name, r in table.routes.items() if route_severity(r) is Severity.MAJOR)
    sev = page_severity(table)
    if indicator == "critical":
        text = "All routes are down"
    elif down:
        text = f"Major outage: routes down: {', '.join(down)}"
    elif sev >= Severity.PARTIAL:
        text = "Partial outage: some targets are out; every route still serves"
    elif sev >= Severity.DEGRADED:
        text = "Partially degraded service"
    else:
        text = "All Systems Operational"
    return {
        "page": {"id": page_id, "name": "Turnout", "url": page_url, "time_zone": "Etc/UTC", "updated_at": updated},
        "status": {"indicator": indicator, "description": text},
        "components": components,
        "incidents": incidents,
        "scheduled_maintenances": [],
    }
