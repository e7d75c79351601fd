"""`GET /api/v1/usage?by=route|target|tag|key&window=…`: requests, errors, tokens and spend from the decision log.

The records are written by the data plane's decision log (controlplane/decisions.py), which also holds the query.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import web
from sqlalchemy import Engine

from controlplane.clock import Clock
from controlplane.decisions import USAGE_GROUPS, ensure_decision_table, summarise
from controlplane.durations import parse_duration

__all__ = ["install"]


def _bad(field: str, problem: str) -> web.Response:
    return web.json_response(
        {
            "error": {
                "message": f"{field}: {problem}",
                "type": "invalid_request_error",
                "param": field,
                "code": "bad_parameter",
            }
        },
        status=400,
    )


async def _usage(request: web.Request) -> web.Response:
    engine, clock = request.app[_ENGINE], request.app[_CLOCK]
    by = request.query.get("by", "route")
    if by not in USAGE_GROUPS:
        return _bad("by", f"unknown grouping {by!r}; use one of {', '.join(USAGE_GROUPS)}")
    try:
        window = parse_duration(request.query.get("window", "24h"))
    except ValueError as exc:
        return _bad("window", str(exc))
    if engine is None:
        return web.json_response(
            {"error": {"message": "no store configured", "type": "service_unavailable", "param": None, "code": None}},
            status=503,
        )
    now = clock.wall()
    since = now - timedelta(seconds=window)
    # A control replica may start before any data plane wrote a row.
    await asyncio.to_thread(ensure_decision_table, engine)
    rows = await asyncio.to_thread(summarise, engine, by, since)
    total = {
        k: sum(r[k] for r in rows) for k in ("requests", "errors", "attempts", "failed_over", "tokens_in", "tokens_out")
    }
    total["cost_usd"] = round(sum(r["cost_usd"] for r in rows), 6)
    return web.json_response(
        {
            "by": by,
            "window_s": window,
            "since": since.isoformat().replace("+00:00", "Z"),
            "until": now.isoformat().replace("+00:00", "Z"),
            "rows": rows,
            "total": total,
        }
    )


_ENGINE: web.AppKey[Engine | None] = web.AppKey("turnout_usage_engine")
_CLOCK: web.AppKey[Clock] = web.AppKey("turnout_usage_clock")


def install(app: web.Application, engine: Engine | None, clock: Clock) -> None:
    """Add `GET /api/v1/usage` to the control app; `engine` None answers 503 (no store configured)."""
    app[_ENGINE] = engine
    app[_CLOCK] = clock
    app.router.add_get("/api/v1/usage", _usage)
