"""The simulator's admin API (its own port): providers and URLs, faults (list/set/clear), reset, stats,
timeline, and each provider's status pages (adapters/sim/status_pages.py). Documented in docs/simulator.md."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from adapters.sim.catalogue import ALIASES, FAULTS
from adapters.sim.config import SimConfig
from adapters.sim.control import SIMULATOR, SimControl, bad_request
from adapters.sim.status_pages import add_status_page_routes
from controlplane.durations import parse_duration

__all__ = ["build_admin_app"]


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
    add_status_page_routes(r)
    return app


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return bad_request("the body must be JSON")
    if not isinstance(body, dict):
        return bad_request("the body must be a JSON object")
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
        return bad_request(
            f"unknown field(s) {', '.join(sorted(unknown))}; use provider, fault, model, count, duration, probability, params"
        )
    for field in ("provider", "fault"):
        if not isinstance(body.get(field), str):
            return bad_request(f"`{field}` is required (a string)")
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
        return bad_request(str(exc).strip('"'))
    await sim.tick()
    rule = next(f for f in sim.faults() if f["id"] == fid)
    return web.json_response(rule, status=201)


async def _clear_faults(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    try:
        n = sim.clear_faults(request.query.get("provider"), request.query.get("model"))
    except KeyError as exc:
        return bad_request(str(exc).strip('"'), 404)
    await sim.tick()
    return web.json_response({"cleared": n})


async def _clear_fault(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    n = sim.clear_faults(fault_id=request.match_info["id"])
    if not n:
        return bad_request(f"no active fault {request.match_info['id']!r}", 404)
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
        return bad_request(f"{where}: {msg}" if where else msg)
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
        return bad_request(str(exc))
    except TypeError as exc:
        return bad_request(str(exc), 409)
    return web.json_response({"monotonic": sim.clock.monotonic()})
