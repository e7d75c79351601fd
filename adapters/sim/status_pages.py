"""The simulated providers' status pages on the admin port: Statuspage `summary.json`/`status.json` and
Google-style `incidents.json`, shaped by the ST-1/2/3 faults (ST-2: the feed itself is down)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.sim.catalogue import Behaviour
from adapters.sim.control import SIMULATOR, SimControl, bad_request
from adapters.sim.respond import hold

__all__ = ["add_status_page_routes"]


def add_status_page_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/status/{provider}/api/v2/summary.json", _summary)
    r.add_get("/status/{provider}/api/v2/status.json", _status)
    r.add_get("/status/{provider}/incidents.json", _incidents)


def _page_state(request: web.Request) -> tuple[SimControl, str, set[str]] | web.Response:
    sim = request.app[SIMULATOR]
    pid = request.match_info["provider"]
    if pid not in sim.providers:
        return bad_request(f"unknown provider {pid!r}", 404)
    active = {r.spec.id for r in sim.book.passive(pid, Behaviour.STATUS)}
    return sim, pid, active


async def _feed_down(sim: SimControl, pid: str) -> web.Response | None:
    """ST-2: the feed itself fails (503, or holds until the fault clears)."""
    rule = next((r for r in sim.book.passive(pid, Behaviour.STATUS) if r.spec.id == "ST-2"), None)
    if rule is None:
        return None
    if str(rule.param("mode", "503")) == "timeout":
        await hold(rule, sim.stopping, None)
    return web.Response(status=503, text="<html><body>503 Service Unavailable</body></html>", content_type="text/html")


def _page(sim: SimControl, pid: str, active: set[str]) -> dict[str, Any]:
    now = sim.clock.wall().strftime("%Y-%m-%dT%H:%M:%S.000Z")
    major = "ST-1" in active
    component = {
        "id": f"cmp-{pid}-api",
        "name": "API",
        "status": "partial_outage" if major else "operational",
        "group_id": None,
        "group": False,
        "updated_at": now,
    }
    incidents = []
    if major:
        incidents.append(
            {
                "id": f"inc-{pid}",
                "name": "Elevated error rates",
                "status": "investigating",
                "impact": "major",
                "started_at": now,
                "updated_at": now,
                "shortlink": f"https://stspg.io/{pid}",
                "incident_updates": [
                    {"status": "investigating", "body": "We are investigating elevated error rates.", "created_at": now}
                ],
                "components": [component],
            }
        )
    return {
        "page": {
            "id": f"page-{pid}",
            "name": f"{pid} (simulated)",
            "url": sim.status_page_url(pid),
            "time_zone": "Etc/UTC",
            "updated_at": now,
        },
        "status": {
            "indicator": "major" if major else "none",
            "description": "Partial System Outage" if major else "All Systems Operational",
        },
        "components": [component],
        "incidents": incidents,
        "scheduled_maintenances": [],
    }


async def _summary(request: web.Request) -> web.Response:
    state = _page_state(request)
    if isinstance(state, web.Response):
        return state
    sim, pid, active = state
    return await _feed_down(sim, pid) or web.json_response(_page(sim, pid, active))


async def _status(request: web.Request) -> web.Response:
    state = _page_state(request)
    if isinstance(state, web.Response):
        return state
    sim, pid, active = state
    page = _page(sim, pid, active)
    return await _feed_down(sim, pid) or web.json_response({"page": page["page"], "status": page["status"]})


async def _incidents(request: web.Request) -> web.Response:
    state = _page_state(request)
    if isinstance(state, web.Response):
        return state
    sim, pid, active = state
    down = await _feed_down(sim, pid)
    if down is not None:
        return down
    now = sim.clock.wall().strftime("%Y-%m-%dT%H:%M:%S+00:00")
    resolved = {
        "id": f"old-{pid}",
        "begin": "2025-12-01T10:00:00+00:00",
        "end": "2025-12-01T11:00:00+00:00",
        "external_desc": "Resolved: elevated latency",
        "service_name": "Vertex Gemini API",
        "severity": "low",
        "status_impact": "SERVICE_DISRUPTION",
        "uri": f"incidents/old-{pid}",
        "affected_products": [{"title": "Vertex Gemini API", "id": "Z0FZJAMvEB4j3NbCJs6B"}],
        "most_recent_update": {"created": "2025-12-01T11:00:00+00:00", "text": "Resolved.", "status": "AVAILABLE"},
    }
    out = [resolved]
    if "ST-3" in active:
        out.insert(
            0,
            {
                "id": f"inc-{pid}",
                "begin": now,
                "external_desc": "Gemini API requests failing",
                "service_name": "Vertex Gemini API",
                "severity": "high",
                "status_impact": "SERVICE_OUTAGE",
                "uri": f"incidents/inc-{pid}",
                "affected_products": [{"title": "Vertex Gemini API", "id": "Z0FZJAMvEB4j3NbCJs6B"}],
                "most_recent_update": {"created": now, "text": "We are investigating.", "status": "SERVICE_OUTAGE"},
            },
        )
    return web.json_response(out)
