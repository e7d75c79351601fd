"""The simulator's admin API (its own port): providers and URLs, faults (list/set/clear), reset, stats,
timeline, and each provider's status pages (Statuspage `summary.json`/`status.json`, Google `incidents.json`)
shaped by the ST-1/2/3 faults. Documented in docs/simulator.md."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from adapters.sim.catalogue import ALIASES, FAULTS, Behaviour
from adapters.sim.config import SimConfig
from adapters.sim.respond import hold
from controlplane.durations import parse_duration

if TYPE_CHECKING:
    from adapters.sim.faults import FaultBook
    from adapters.sim.provider import ProviderServer
    from adapters.sim.timeline import Timeline
    from controlplane.clock import Clock

__all__ = ["build_admin_app", "SimControl", "SIMULATOR"]


class SimControl(Protocol):
    """What the admin API drives. `Simulator` (adapters/sim/simulator.py) is one; the admin module names only
    this seam, so the simulator that serves the admin app can import it without a circle."""

    config: SimConfig
    clock: Clock
    book: FaultBook
    timeline: Timeline
    providers: dict[str, ProviderServer]

    @property
    def stopping(self) -> asyncio.Event: ...

    def status_page_url(self, provider: str, kind: str = "summary") -> str: ...

    def set_fault(
        self,
        provider: str,
        fault: str,
        model: str | None = None,
        count: int | None = None,
        duration: float | None = None,
        probability: float | None = None,
        _start: float | None = None,
        **params: Any,
    ) -> str: ...

    def clear_faults(
        self, provider: str | None = None, model: str | None = None, fault_id: str | None = None
    ) -> int: ...

    def faults(self) -> list[dict[str, Any]]: ...

    def reset(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    def reset_stats(self) -> None: ...

    async def tick(self) -> None: ...

    async def advance(self, seconds: float) -> None: ...


SIMULATOR: web.AppKey[SimControl] = web.AppKey("simulator")


def build_admin_app(sim: SimControl) -> web.Application:
    app = web.Application()
    app[SIMULATOR] = sim
    r = app.router
    r.add_get("/", _index)
    r.add_get("/providers", _providers)
    r.add_get("/catalogue", _catalogue)
    r.add_get("/faults", _faults)
    r.add_post("/faults", _set_fault)
    r.add_delete("/faults", _clear_faults)
    r.add_delete("/faults/{id}", _clear_fault)
    r.add_post("/reset", _reset)
    r.add_get("/stats", _stats)
    r.add_post("/stats/reset", _stats_reset)
    r.add_get("/timeline", _timeline)
    r.add_put("/timeline", _timeline_set)
    r.add_post("/timeline/start", _timeline_start)
    r.add_post("/timeline/stop", _timeline_stop)
    r.add_post("/advance", _advance)
    r.add_get("/status/{provider}/api/v2/summary.json", _summary)
    r.add_get("/status/{provider}/api/v2/status.json", _status)
    r.add_get("/status/{provider}/incidents.json", _incidents)
    return app


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _bad("the body must be JSON")
    if not isinstance(body, dict):
        return _bad("the body must be a JSON object")
    return body


async def _index(request: web.Request) -> web.Response:
    routes = sorted(
        {f"{r.method} {r.resource.canonical}" for r in request.app.router.routes() if r.resource is not None}
    )
    return web.json_response({"simulator": "turnout", "routes": routes})


async def _providers(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    out = []
    for pid, server in sim.providers.items():
        p = server.cfg
        out.append(
            {
                "id": pid,
                "family": p.family,
                "flavor": p.effective_flavor,
                "port": server.port,
                "url": server.root_url,
                "base_url": server.base_url,
                "listening": server.listening,
                "auth": p.api_key is not None,  # never the key itself
                "models": [{"name": m.name, "context_window": m.context_window} for m in p.models],
                "rate_limits": p.rate_limits.model_dump(mode="json"),
                "status_page": sim.status_page_url(pid),
            }
        )
    return web.json_response({"providers": out})


async def _catalogue(request: web.Request) -> web.Response:
    faults = [
        {
            "id": f.id,
            "behaviour": f.behaviour.value,
            "summary": f.summary,
            "families": sorted(f.families) if f.families else None,
            "expected_class": f.expected.value if f.expected else None,
            "defaults": dict(f.defaults),
        }
        for f in FAULTS.values()
    ]
    return web.json_response({"faults": faults, "aliases": ALIASES})


async def _faults(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    provider = request.query.get("provider")
    return web.json_response({"faults": [f for f in sim.faults() if provider is None or f["provider"] == provider]})


async def _set_fault(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    unknown = set(body) - {"provider", "fault", "model", "count", "duration", "probability", "params"}
    if unknown:
        return _bad(
            f"unknown field(s) {', '.join(sorted(unknown))}; use provider, fault, model, count, duration, probability, params"
        )
    for field in ("provider", "fault"):
        if not isinstance(body.get(field), str):
            return _bad(f"`{field}` is required (a string)")
    try:
        duration = None if body.get("duration") is None else parse_duration(body["duration"])
        count = body.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
            raise ValueError(f"count must be an integer, got {count!r}")
        probability = body.get("probability")
        if probability is not None and not isinstance(probability, int | float):
            raise ValueError(f"probability must be a number, got {probability!r}")
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise ValueError("params must be an object")
        fid = sim.set_fault(
            body["provider"],
            body["fault"],
            model=body.get("model"),
            count=count,
            duration=duration,
            probability=probability,
            **params,
        )
    except (ValueError, KeyError) as exc:
        return _bad(str(exc).strip('"'))
    await sim.tick()
    rule = next(f for f in sim.faults() if f["id"] == fid)
    return web.json_response(rule, status=201)


async def _clear_faults(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    try:
        n = sim.clear_faults(request.query.get("provider"), request.query.get("model"))
    except KeyError as exc:
        return _bad(str(exc).strip('"'), 404)
    await sim.tick()
    return web.json_response({"cleared": n})


async def _clear_fault(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    n = sim.clear_faults(fault_id=request.match_info["id"])
    if not n:
        return _bad(f"no active fault {request.match_info['id']!r}", 404)
    await sim.tick()
    return web.json_response({"cleared": n})


async def _reset(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    sim.reset()
    await sim.tick()
    return web.json_response({"reset": True})


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIMULATOR].stats())


async def _stats_reset(request: web.Request) -> web.Response:
    request.app[SIMULATOR].reset_stats()
    return web.json_response({"reset": True})


async def _timeline(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIMULATOR].timeline.to_json())


async def _timeline_set(request: web.Request) -> web.Response:
    """Replace the entries: body `{"entries": [...], "start": true}`; each entry is checked like sim.yaml."""
    sim = request.app[SIMULATOR]
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    try:
        # Validated as part of a whole config so provider, model and fault names are checked too.
        checked = SimConfig.model_validate({**sim.config.model_dump(), "timeline": body.get("entries", [])})
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in e["loc"]).replace("timeline", "entries", 1)
        msg = str(e["msg"]).removeprefix("Value error, ").replace("timeline[", "entries[", 1)
        return _bad(f"{where}: {msg}" if where else msg)
    sim.timeline.replace(list(checked.timeline))
    if body.get("start"):
        sim.timeline.start()
    await sim.tick()
    return web.json_response(sim.timeline.to_json())


async def _timeline_start(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    sim.timeline.start()
    await sim.tick()
    return web.json_response(sim.timeline.to_json())


async def _timeline_stop(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    sim.timeline.stop()
    return web.json_response(sim.timeline.to_json())


async def _advance(request: web.Request) -> web.Response:
    """Move an injected clock (tests only): body `{"seconds": 30}`; 409 on the real clock."""
    sim = request.app[SIMULATOR]
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    try:
        seconds = parse_duration(body.get("seconds"))
        await sim.advance(seconds)
    except ValueError as exc:
        return _bad(str(exc))
    except TypeError as exc:
        return _bad(str(exc), 409)
    return web.json_response({"monotonic": sim.clock.monotonic()})


# -- status pages --


def _page_state(request: web.Request) -> tuple[SimControl, str, set[str]] | web.Response:
    sim = request.app[SIMULATOR]
    pid = request.match_info["provider"]
    if pid not in sim.providers:
        return _bad(f"unknown provider {pid!r}", 404)
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
