"""Batch ingest of live outcomes from data-plane replicas: `POST /api/v1/observations` on the control app.

A data replica buffers the outcome of every upstream attempt and posts them here in batches. Only the
leader feeds them into its pipeline (breakers see them like its own live traffic); a follower answers 503
`not_leader` with the leader's URL when it knows it, and the replica tries its next control URL.
Outcomes older than the breaker window (buffered while the control plane was away) are only stored for
history and uptime: replaying them into breakers would judge the present on the past.

Body: `{"replica": "name", "observations": [{"target", "at", "kind", "error_class", ...}, ...],
"decisions": [{"at", "route", "target", "outcome", "status", "attempts", "tokens_in", ...}, ...]}`
(`decisions` optional: the replica's decision-log records, written to this store); needs an admin token.
Answer 202: `{"accepted", "stale", "rejected": [{"index", "field", "error"}], "decisions_accepted",
"decisions_rejected", "table_version"}`.
`GET /api/v1/leader` (read scope) says whether this replica leads, the term and the leader's URL.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from controlplane.api.auth import AuthFailure, authorize
from controlplane.decisions import Decision, DecisionLog
from controlplane.domain import ErrorClass, Observation, Scope, Source
from controlplane.seams import ReplicationDeps

__all__ = [
    "MAX_BATCH",
    "WireError",
    "observation_to_wire",
    "observation_from_wire",
    "decision_to_wire",
    "decision_from_wire",
    "install",
]

log = logging.getLogger("turnout.replication")
Handler = Callable[[web.Request], Awaitable[web.Response]]

MAX_BATCH = 10_000
_MAX_ATTEMPTS = 64
_DECISIONS: web.AppKey[DecisionLog] = web.AppKey("turnout_replica_decisions", DecisionLog)
_MAX_REJECTS_SHOWN = 20
_FLOATS = ("latency_s", "ttft_s", "tokens_per_s", "headroom", "retry_after_s")
_ERROR_CLASSES: dict[str, ErrorClass] = {e.value: e for e in ErrorClass}  # a dict lookup, not Enum's call
_SCOPES: dict[str, Scope] = {s.value: s for s in Scope}


class WireError(ValueError):
    """One reported observation is malformed: names the field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


def _wire_time(d: dict[str, Any], field: str) -> datetime:
    try:
        at = datetime.fromisoformat(str(d.get(field)).replace("Z", "+00:00"))
    except ValueError:
        raise WireError(field, "must be an ISO 8601 time") from None
    if at.tzinfo is UTC:  # what replicas send: no conversion needed
        return at
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _wire_number(d: dict[str, Any], field: str, *, nullable: bool = True) -> float | None:
    v = d.get(field)
    if v is None and nullable:
        return None
    if type(v) is float and 0 <= v < math.inf:  # the common case, checked cheaply (a report brings thousands)
        return v
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise WireError(field, "must be a finite number >= 0" + (" or null" if nullable else ""))
    return float(v)


def _wire_count(d: dict[str, Any], field: str) -> int:
    v = d.get(field, 0)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise WireError(field, "must be an integer >= 0")
    return v


def _wire_text(d: dict[str, Any], field: str, limit: int, *, nullable: bool = False) -> str | None:
    v = d.get(field)
    if v is None and nullable:
        return None
    if not isinstance(v, str) or not 0 < len(v) <= limit:
        raise WireError(field, f"must be a string of 1 to {limit} characters" + (" or null" if nullable else ""))
    return v


def observation_to_wire(o: Observation) -> dict[str, Any]:
    """The JSON shape a data replica sends (no `extra`: it may hold request details that stay local)."""
    return {
        "target": o.target,
        "at": o.at.isoformat(),
        "kind": o.kind,
        "error_class": str(o.error_class),
        "latency_s": o.latency_s,
        "ttft_s": o.ttft_s,
        "tokens_per_s": o.tokens_per_s,
        "status": o.status,
        "headroom": o.headroom,
        "retry_after_s": o.retry_after_s,
        "scope": str(o.scope),
        "code": o.code,
        "detail": o.detail[:300],
    }


def observation_from_wire(d: Any) -> Observation:
    """Validate one reported observation; raise WireError naming the first bad field. Always `source=live`."""
    if not isinstance(d, dict):
        raise WireError("observation", "must be a JSON object")
    target = d.get("target")
    if not isinstance(target, str) or "/" not in target or len(target) > 300:
        raise WireError("target", "must be 'provider/model'")
    at = _wire_time(d, "at")
    raw_class, raw_scope = d.get("error_class"), d.get("scope", "target")
    error_class = _ERROR_CLASSES.get(raw_class) if isinstance(raw_class, str) else None
    if error_class is None:
        raise WireError("error_class", f"unknown error class; known: {', '.join(e.value for e in ErrorClass)}")
    scope = _SCOPES.get(raw_scope) if isinstance(raw_scope, str) else None
    if scope is None:
        raise WireError("scope", f"unknown scope; known: {', '.join(s.value for s in Scope)}")
    kind = d.get("kind", "live")
    if not isinstance(kind, str) or not 0 < len(kind) <= 32:
        raise WireError("kind", "must be a short string")
    floats = {name: _wire_number(d, name) for name in _FLOATS}
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
        target=target,
        at=at,
        source=Source.LIVE,
        kind=kind,
        error_class=error_class,
        status=status,
        scope=scope,
        code=code[:200] if code else None,
        detail=detail[:300],
        **floats,  # type: ignore[arg-type]
    )


def decision_to_wire(d: Decision) -> dict[str, Any]:
    """A decision-log record as a data replica sends it (never the prompt or the completion: it has neither)."""
    return {
        "at": d.at.isoformat(),
        "route": d.route,
        "target": d.target,
        "outcome": d.outcome,
        "status": d.status,
        "stream": d.stream,
        "attempts": [list(a) for a in d.attempts],
        "tokens_in": d.tokens_in,
        "tokens_out": d.tokens_out,
        "cost_usd": d.cost_usd,
        "latency_s": d.latency_s,
        "ttft_s": d.ttft_s,
        "tag": d.tag,
        "table_version": d.table_version,
        "api": d.api,
        "key_id": d.key_id,
    }


def decision_from_wire(d: Any) -> Decision:
    """Validate one reported decision; raise WireError naming the first bad field."""
    if not isinstance(d, dict):
        raise WireError("decision", "must be a JSON object")
    status = d.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status < 600:
        raise WireError("status", "must be an HTTP status code")
    stream = d.get("stream", False)
    if not isinstance(stream, bool):
        raise WireError("stream", "must be true or false")
    raw_attempts = d.get("attempts", [])
    if not isinstance(raw_attempts, list) or len(raw_attempts) > _MAX_ATTEMPTS:
        raise WireError("attempts", f"must be a list of at most {_MAX_ATTEMPTS} [target, error_class, status]")
    attempts: list[tuple[str, str, int | None]] = []
    for a in raw_attempts:
        if (
            not isinstance(a, list)
            or len(a) != 3
            or not isinstance(a[0], str)
            or not isinstance(a[1], str)
            or len(a[0]) > 300
            or len(a[1]) > 32
            or not (a[2] is None or (isinstance(a[2], int) and not isinstance(a[2], bool)))
        ):
            raise WireError("attempts", "each must be [target, error_class, status or null]")
        attempts.append((a[0], a[1], a[2]))
    version = d.get("table_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise WireError("table_version", "must be an integer >= 0")
    return Decision(
        at=_wire_time(d, "at"),
        route=_wire_text(d, "route", 300) or "",
        target=_wire_text(d, "target", 300, nullable=True),
        outcome=_wire_text(d, "outcome", 32) or "",
        status=status,
        stream=stream,
        attempts=attempts,
        tokens_in=_wire_count(d, "tokens_in"),
        tokens_out=_wire_count(d, "tokens_out"),
        cost_usd=_wire_number(d, "cost_usd", nullable=False) or 0.0,
        latency_s=_wire_number(d, "latency_s"),
        ttft_s=_wire_number(d, "ttft_s"),
        tag=_wire_text(d, "tag", 128, nullable=True),
        table_version=version,
        api=_wire_text(d, "api", 16, nullable=True) or "chat",  # absent from an older replica: chat
        key_id=_wire_text(d, "key_id", 16, nullable=True),
    )


def _error(status: int, code: str, message: str, field: str | None = None, **extra: Any) -> web.Response:
    body = {"error": {"status": status, "code": code, "message": message, "field": field, **extra}}
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _authorized(request: web.Request, deps: ReplicationDeps) -> web.Response | None:
    try:
        authorize(request, deps.config.auth, "admin")
    except AuthFailure as exc:
        return _error(exc.status, exc.code, exc.message)
    return None


async def _not_leader(deps: ReplicationDeps) -> web.Response | None:
    leadership = deps.leadership
    if leadership is None or leadership.is_leader:
        return None
    info = await leadership.current()
    url = info.url if info is not None and info.valid else None
    return _error(503, "not_leader", "this control replica does not lead; report to the leader", leader=url)


def _handler(deps: ReplicationDeps) -> Handler:
    async def ingest(request: web.Request) -> web.Response:
        denied = _authorized(request, deps)
        if denied is not None:
            return denied
        refused = await _not_leader(deps)
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
            return _error(
                413, "batch_too_large", f"observations: at most {MAX_BATCH} per batch, got {len(items)}", "observations"
            )
        known = deps.config.target_keys()
        horizon = deps.clock.wall() - timedelta(seconds=deps.config.breaker.window)
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
        raw_decisions = body.get("decisions", [])
        if not isinstance(raw_decisions, list):
            return _error(422, "invalid_field", "decisions: must be a list", "decisions")
        if len(raw_decisions) > MAX_BATCH:
            return _error(
                413,
                "batch_too_large",
                f"decisions: at most {MAX_BATCH} per batch, got {len(raw_decisions)}",
                "decisions",
            )
        decisions: list[Decision] = []
        rejected_decisions: list[dict[str, Any]] = []
        for i, raw in enumerate(raw_decisions):
            try:
                decisions.append(decision_from_wire(raw))
            except WireError as exc:
                rejected_decisions.append({"index": i, "field": exc.field, "error": exc.problem})
        decision_log = request.app[_DECISIONS]
        for d in decisions:
            decision_log.record(d)
        for obs in fresh:
            deps.sink.submit(obs)
        if stale:
            try:
                await asyncio.to_thread(deps.store.add_observations, stale)
            except Exception as exc:  # history only: the breakers never needed them
                log.warning("storing %d stale replica observations failed (%s)", len(stale), type(exc).__name__)
        replica = str(body.get("replica", "?"))[:80]
        if rejected:
            log.warning(
                "replica %s: %d of %d observations rejected (first: %s)",
                replica,
                len(rejected),
                len(items),
                rejected[0],
            )
        if rejected_decisions:
            log.warning(
                "replica %s: %d of %d decisions rejected (first: %s)",
                replica,
                len(rejected_decisions),
                len(raw_decisions),
                rejected_decisions[0],
            )
        return web.Response(
            body=orjson.dumps(
                {
                    "accepted": len(fresh) + len(stale),
                    "stale": len(stale),
                    "rejected": rejected[:_MAX_REJECTS_SHOWN],
                    "decisions_accepted": len(decisions),
                    "decisions_rejected": rejected_decisions[:_MAX_REJECTS_SHOWN],
                    "table_version": deps.table_source.current().version,
                }
            ),
            status=202,
            content_type="application/json",
        )

    return ingest


def _leader_handler(deps: ReplicationDeps) -> Handler:
    async def leader(request: web.Request) -> web.Response:
        try:
            authorize(request, deps.config.auth, "read")
        except AuthFailure as exc:
            return _error(exc.status, exc.code, exc.message)
        leadership = deps.leadership
        if leadership is None:  # one process (SQLite): it always leads
            body: dict[str, Any] = {"mode": "single", "this_replica_leads": True, "term": 1, "leader_url": None}
        else:
            info = await leadership.current()
            body = {
                "mode": "replicated",
                "this_replica_leads": bool(leadership.is_leader),
                "term": info.term if info else None,
                "leader_url": info.url if info is not None and info.valid else None,
                "lease_remaining_s": round(info.expires_in_s, 3) if info is not None and info.valid else None,
            }
        body["table_version"] = deps.table_source.current().version
        return web.Response(
            body=orjson.dumps(body), content_type="application/json", headers={"Cache-Control": "no-cache"}
        )

    return leader


def install(app: web.Application, deps: ReplicationDeps) -> None:
    """Mount `POST /api/v1/observations` and `GET /api/v1/leader` (who leads, as the database sees it).

    Reported decisions go to a decision log of this app's own (batched writes to the store, hourly pruning):
    a `--role control` replica has no data plane whose log could take them."""
    app[_DECISIONS] = DecisionLog(
        deps.store.engine, deps.clock, retention_s=deps.config.dataplane.decision_log_retention
    )

    async def start_log(app: web.Application) -> None:
        await app[_DECISIONS].start()

    async def stop_log(app: web.Application) -> None:
        try:
            await app[_DECISIONS].stop()
        except Exception:  # the store is gone at shutdown: the records are lost, the shutdown is not
            log.warning("replica decisions not written at shutdown", exc_info=True)

    app.on_startup.append(start_log)
    app.on_cleanup.append(stop_log)
    app.router.add_post("/api/v1/observations", _handler(deps))
    app.router.add_get("/api/v1/leader", _leader_handler(deps))
