"""Batch ingest of live outcomes from data-plane replicas: `POST /api/v1/observations` on the control app.

A data replica buffers the outcome of every upstream attempt and posts them here in batches. Only the
leader feeds them into its pipeline (breakers see them like its own live traffic); a follower answers 503
`not_leader` with the leader's URL when it knows it, and the replica tries its next control URL.
Outcomes older than the breaker window (buffered while the control plane was away) are only stored for
history and uptime: replaying them into breakers would judge the present on the past.

Body: `{"replica": "name", "observations": [{"target", "at", "kind", "error_class", ...}, ...]}`; needs an
admin token. Answer 202: `{"accepted", "stale", "rejected": [{"index", "field", "error"}], "table_version"}`.
`GET /api/v1/leader` (read scope) says whether this replica leads, the term and the leader's URL.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from controlplane.domain import ErrorClass, Observation, Scope, Source

__all__ = ["MAX_BATCH", "WireError", "observation_to_wire", "observation_from_wire", "install"]

log = logging.getLogger("turnout.replication")

MAX_BATCH = 10_000
_MAX_REJECTS_SHOWN = 20
_FLOATS = ("latency_s", "ttft_s", "tokens_per_s", "headroom", "retry_after_s")


class WireError(ValueError):
    """One reported observation is malformed: names the field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


def observation_to_wire(o: Observation) -> dict[str, Any]:
    """The JSON shape a data replica sends (no `extra`: it may hold request details that stay local)."""
    return {
        "target": o.target, "at": o.at.isoformat(), "kind": o.kind, "error_class": str(o.error_class),
        "latency_s": o.latency_s, "ttft_s": o.ttft_s, "tokens_per_s": o.tokens_per_s, "status": o.status,
        "headroom": o.headroom, "retry_after_s": o.retry_after_s, "scope": str(o.scope), "code": o.code,
        "detail": o.detail[:300],
    }


def observation_from_wire(d: Any) -> Observation:
    """Validate one reported observation; raise WireError naming the first bad field. Always `source=live`."""
    if not isinstance(d, dict):
        raise WireError("observation", "must be a JSON object")
    target = d.get("target")
    if not isinstance(target, str) or "/" not in target or len(target) > 300:
        raise WireError("target", "must be 'provider/model'")
    try:
        at = datetime.fromisoformat(str(d.get("at")).replace("Z", "+00:00"))
    except ValueError:
        raise WireError("at", "must be an ISO 8601 time") from None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    try:
        error_class = ErrorClass(str(d.get("error_class")))
    except ValueError:
        raise WireError("error_class", f"unknown error class; known: {', '.join(e.value for e in ErrorClass)}") from None
    try:
        scope = Scope(str(d.get("scope", "target")))
    except ValueError:
        raise WireError("scope", f"unknown scope; known: {', '.join(s.value for s in Scope)}") from None
    kind = d.get("kind", "live")
    if not isinstance(kind, str) or not 0 < len(kind) <= 32:
        raise WireError("kind", "must be a short string")
    floats: dict[str, float | None] = {}
    for name in _FLOATS:
        v = d.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0):
            raise WireError(name, "must be a finite number >= 0 or null")
        floats[name] = None if v is None else float(v)
    status = d.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 0 <= status < 1000):
        raise WireError("status", "must be an HTTP status code or null")
    code = d.get("code")
    if code is not None and not isinstance(code, str):
        raise WireError("code", "must be a string or null")
    detail = d.get("detail", "")
    if not isinstance(detail, str):
        raise WireError("detail", "must be a string")
    return Observation(
        target=target, at=at, source=Source.LIVE, kind=kind, error_class=error_class, status=status, scope=scope,
        code=code[:200] if code else None, detail=detail[:300], **floats,  # type: ignore[arg-type]
    )


def _error(status: int, code: str, message: str, field: str | None = None, **extra: Any) -> web.Response:
    body = {"error": {"status": status, "code": code, "message": message, "field": field, **extra}}
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _authorized(request: web.Request, rt: Any) -> web.Response | None:
    from controlplane.api.auth import AuthFailure, authorize

    try:
        authorize(request, rt.config.auth, "admin")
    except AuthFailure as exc:
        return _error(exc.status, exc.code, exc.message)
    return None


async def _not_leader(rt: Any) -> web.Response | None:
    leadership = getattr(rt, "leadership", None)
    if leadership is None or leadership.is_leader:
        return None
    info = await leadership.current()
    url = info.url if info is not None and info.valid else None
    return _error(503, "not_leader", "this control replica does not lead; report to the leader", leader=url)


def _handler(rt: Any) -> Any:
    async def ingest(request: web.Request) -> web.Response:
        denied = _authorized(request, rt)
        if denied is not None:
            return denied
        refused = await _not_leader(rt)
        if refused is not None:
            return refused
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return _error(400, "invalid_json", f"body is not valid JSON: {exc}")
        items = body.get("observations") if isinstance(body, dict) else None
        if not isinstance(items, list):
            return _error(422, "invalid_field", "observations: must be a list", "observations")
        if len(items) > MAX_BATCH:
            return _error(413, "batch_too_large", f"observations: at most {MAX_BATCH} per batch, got {len(items)}", "observations")
        known = rt.config.target_keys()
        horizon = rt.clock.wall() - timedelta(seconds=rt.config.breaker.window)
        fresh: list[Observation] = []
        stale: list[Observation] = []
        rejected: list[dict[str, Any]] = []
        for i, raw in enumerate(items):
            try:
                obs = observation_from_wire(raw)
                if obs.target not in known:
                    raise WireError("target", f"unknown target {obs.target[:120]!r}")
            except WireError as exc:
                rejected.append({"index": i, "field": exc.field, "error": exc.problem})
                continue
            (fresh if obs.at >= horizon else stale).append(obs)
        for obs in fresh:
            rt.sink.submit(obs)
        if stale:
            try:
                await asyncio.to_thread(rt.store.add_observations, stale)
            except Exception as exc:  # history only: the breakers never needed them
                log.warning("storing %d stale replica observations failed (%s)", len(stale), type(exc).__name__)
        if rejected:
            replica = str(body.get("replica", "?"))[:80]
            log.warning("replica %s: %d of %d observations rejected (first: %s)", replica, len(rejected), len(items), rejected[0])
        return web.Response(
            body=orjson.dumps({"accepted": len(fresh) + len(stale), "stale": len(stale), "rejected": rejected[:_MAX_REJECTS_SHOWN],
                               "table_version": rt.table_source.current().version}),
            status=202, content_type="application/json",
        )

    return ingest


def _leader_handler(rt: Any) -> Any:
    async def leader(request: web.Request) -> web.Response:
        from controlplane.api.auth import AuthFailure, authorize

        try:
            authorize(request, rt.config.auth, "read")
        except AuthFailure as exc:
            return _error(exc.status, exc.code, exc.message)
        leadership = getattr(rt, "leadership", None)
        if leadership is None:  # one process (SQLite): it always leads
            body: dict[str, Any] = {"mode": "single", "this_replica_leads": True, "term": 1, "leader_url": None}
        else:
            info = await leadership.current()
            body = {
                "mode": "replicated", "this_replica_leads": bool(leadership.is_leader), "term": info.term if info else None,
                "leader_url": info.url if info is not None and info.valid else None,
                "lease_remaining_s": round(info.expires_in_s, 3) if info is not None and info.valid else None,
            }
        body["table_version"] = rt.table_source.current().version
        return web.Response(body=orjson.dumps(body), content_type="application/json", headers={"Cache-Control": "no-cache"})

    return leader


def install(app: web.Application, rt: Any) -> None:
    """Mount `POST /api/v1/observations` and `GET /api/v1/leader` (who leads, as the database sees it)."""
    app.router.add_post("/api/v1/observations", _handler(rt))
    app.router.add_get("/api/v1/leader", _leader_handler(rt))
