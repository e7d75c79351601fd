"""Read handlers of the status API: table (ETag + long-poll), routes, targets, providers, events, uptime, summary."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from controlplane.api.jsonio import ApiError, choice_param, float_param, int_param, json_response
from controlplane.api.summary import build_summary
from controlplane.domain import TargetRef
from controlplane.events import EVENT_TYPES
from controlplane.seams import ControlApiDeps
from controlplane.severity import provider_severity, statuspage_component
from controlplane.table import Table, TableEntry

__all__ = ["StatusHandlers", "MAX_ID", "MAX_WAIT_S", "WINDOWS"]

MAX_WAIT_S = 300.0
MAX_ID = 2**53 - 1  # versions and event ids stay JSON-safe integers (and fit SQLite's INTEGER)
WINDOWS: dict[str, float] = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}


def _entry(e: TableEntry) -> dict[str, Any]:
    return {
        "target": e.target,
        "provider": e.provider,
        "model": e.model,
        "state": str(e.state),
        "admissible": e.admissible,
        "rank": e.rank,
        "score": e.score,
        "reason": e.reason,
        "excluded_by": e.excluded_by,
        "latency_p50_s": e.latency_p50_s,
        "latency_p95_s": e.latency_p95_s,
        "ttft_p50_s": e.ttft_p50_s,
        "ttft_p95_s": e.ttft_p95_s,
        "error_rate": e.error_rate,
        "headroom": e.headroom,
        "context_window": e.context_window,
        "adapter": e.adapter,
        "half_open_share": e.half_open_share,
        "latency_source": e.latency_source,
        "latency_samples": e.latency_samples,
        "ttft_source": e.ttft_source,
        "ttft_samples": e.ttft_samples,
        "error_source": e.error_source,
        "error_samples": e.error_samples,
    }


def _obs(o: Any) -> dict[str, Any]:
    return {
        "target": o.target,
        "at": o.at.isoformat().replace("+00:00", "Z"),
        "source": str(o.source),
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
        "detail": o.detail,
    }


class StatusHandlers:
    """Handlers bound to the control node's parts; the table body is serialised once per version (the hot path)."""

    def __init__(self, deps: ControlApiDeps) -> None:
        self.deps = deps
        self._cached: tuple[int, int, bytes] | None = None  # (id(table), version, body)

    def _now(self) -> Table:
        """The published table with the window's figures as of now (the order and states stay those of the
        version; a control replica without a health model serves the published figures)."""
        table: Table = self.deps.table_source.current()
        health = self.deps.health
        return table.with_figures(health.figures_now()) if health is not None else table

    # -- table ------------------------------------------------------------------------------
    def _table_body(self, table: Table) -> bytes:
        c = self._cached
        if c is not None and c[0] == id(table) and c[1] == table.version:
            return c[2]
        import orjson

        body = orjson.dumps(table.to_dict())
        self._cached = (id(table), table.version, body)
        return body

    async def table(self, request: web.Request) -> web.StreamResponse:
        after = int_param(request, "after", minimum=0, maximum=MAX_ID)
        wait = float_param(request, "wait", minimum=0.0, maximum=MAX_WAIT_S)
        if choice_param(request, "figures", ("now",)) == "now" and after is None:
            # The figures of now change without a new version: not cacheable by version (no ETag).
            return json_response(self._now().to_dict(), headers={"Cache-Control": "no-store"})
        table: Table = self.deps.table_source.current()
        if after is not None and table.version <= after:
            newer = await self.deps.table_source.wait_newer(after, wait) if wait else None
            if newer is None:
                return web.Response(status=304, headers={"ETag": f'"{table.version}"', "Cache-Control": "no-cache"})
            table = newer
        etag = f'"{table.version}"'
        if after is None and etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            return web.Response(status=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
        return web.Response(
            body=self._table_body(table),
            content_type="application/json",
            headers={"ETag": etag, "Cache-Control": "no-cache", "X-Table-Version": str(table.version)},
        )

    # -- routes and targets -----------------------------------------------------------------
    @staticmethod
    def _route(name: str, table: Table) -> dict[str, Any]:
        r = table.routes[name]
        return {
            "route": name,
            "panic": r.panic,
            "primary": r.primary.target if r.primary else None,
            "entries": [_entry(e) for e in r.entries],
        }

    async def routes(self, request: web.Request) -> web.Response:
        table = self._now()
        return json_response(
            {"version": table.version, "routes": [self._route(n, table) for n in sorted(table.routes)]}
        )

    async def route(self, request: web.Request) -> web.Response:
        name = request.match_info["route"]
        table = self._now()
        if name not in table.routes:
            known = ", ".join(sorted(table.routes)) or "(none)"
            raise ApiError(404, "not_found", f"unknown route {name[:80]!r}; known: {known}", "route")
        return json_response(self._route(name, table))

    async def targets(self, request: web.Request) -> web.Response:
        table = self._now()
        return json_response(
            {"version": table.version, "targets": [_entry(table.targets[k]) for k in sorted(table.targets)]}
        )

    def target_key(self, request: web.Request) -> str:
        key = f"{request.match_info['provider']}/{request.match_info['model']}"
        if key not in self.deps.config.target_keys():
            raise ApiError(404, "not_found", f"unknown target {key[:120]!r}", "target")
        return key

    def _detail(self, key: str) -> dict[str, Any]:
        health = self.deps.health
        try:
            detail = health.target_detail(key) if health is not None else {}
        except (KeyError, AttributeError):
            detail = {}
        return dict(detail or {})

    async def target(self, request: web.Request) -> web.Response:
        key = self.target_key(request)
        ref = TargetRef.parse(key)
        table = self._now()
        entry = table.targets.get(key)
        latest = await asyncio.to_thread(self.deps.store.latest_observations, key)
        routes = sorted(n for n, r in table.routes.items() if any(e.target == key for e in r.entries))
        return json_response(
            {
                "target": key,
                "provider": ref.provider,
                "model": ref.model,
                "entry": _entry(entry) if entry else None,
                "health": self._detail(key),
                "latest_observations": {k: _obs(o) for k, o in latest.items()},
                "routes": routes,
            },
        )

    def since(self, key: str) -> str | None:
        value = self._detail(key).get("since")
        if value is None:
            return None
        return value if isinstance(value, str) else value.isoformat().replace("+00:00", "Z")

    # -- providers --------------------------------------------------------------------------
    async def providers(self, request: web.Request) -> web.Response:
        table = self._now()
        out = []
        for p in self.deps.config.providers:
            entries = [e for e in table.targets.values() if e.provider == p.id]
            states: dict[str, int] = {}
            for e in entries:
                states[str(e.state)] = states.get(str(e.state), 0) + 1
            status = statuspage_component(provider_severity(entries))
            page = None
            if p.status_page and entries:
                latest = await asyncio.to_thread(self.deps.store.latest_observations, entries[0].target)
                sp = latest.get("status_page")
                if sp is not None:
                    page = {
                        "at": sp.at.isoformat().replace("+00:00", "Z"),
                        "error_class": str(sp.error_class),
                        "detail": sp.detail,
                        "headroom": sp.headroom,
                    }
            out.append(
                {
                    "id": p.id,
                    "adapter": p.adapter,
                    "region": p.region,
                    "jurisdiction": p.jurisdiction,
                    "status": status,
                    "states": states,
                    "targets": [_entry(e) for e in sorted(entries, key=lambda x: x.target)],
                    "status_page": page,
                }
            )
        return json_response({"version": table.version, "providers": out})

    # -- events and uptime ------------------------------------------------------------------
    async def events(self, request: web.Request) -> web.Response:
        after = int_param(request, "after", minimum=0, maximum=MAX_ID)
        limit = int_param(request, "limit", minimum=1, maximum=1000, default=100) or 100
        types: list[str] = []
        for raw in request.query.getall("type", []):
            for t in (x.strip() for x in raw.split(",")):
                if t not in EVENT_TYPES:
                    raise ApiError(
                        422,
                        "invalid_parameter",
                        f"type: unknown event type {t[:60]!r}; known: {', '.join(EVENT_TYPES)}",
                        "type",
                    )
                types.append(t)
        events = await asyncio.to_thread(self.deps.store.list_events, after, types or None, limit)
        payload = [e.to_dict() for e in events]
        return json_response({"events": payload, "next_after": payload[-1]["id"] if payload else after})

    async def uptime(self, request: web.Request) -> web.Response:
        window = choice_param(request, "window", tuple(WINDOWS), default="24h") or "24h"
        target = request.query.get("target")
        provider = request.query.get("provider")
        if target is not None and target not in self.deps.config.target_keys():
            raise ApiError(422, "invalid_parameter", f"target: unknown target {target[:120]!r}", "target")
        if provider is not None and self.deps.config.provider(provider) is None:
            raise ApiError(422, "invalid_parameter", f"provider: unknown provider {provider[:80]!r}", "provider")
        items = await asyncio.to_thread(self.deps.store.uptime, WINDOWS[window], target, provider)
        per: dict[str, dict[str, Any]] = {}
        slo = 0.995
        for it in items:
            slo = float(it.get("slo", slo))
            agg = per.setdefault(it["provider"], {"provider": it["provider"], "ok": 0, "failed": 0})
            agg["ok"] += int(it["ok"])
            agg["failed"] += int(it["failed"])
        for agg in per.values():
            counted = agg["ok"] + agg["failed"]
            up = 100.0 * agg["ok"] / counted if counted else None
            agg["uptime_pct"] = None if up is None else round(up, 4)
            agg["error_budget_used"] = None if up is None else round((1 - up / 100) / (1 - slo), 4)
        return json_response(
            {
                "window": window,
                "window_s": WINDOWS[window],
                "targets": items,
                "providers": sorted(per.values(), key=lambda a: a["provider"]),
            }
        )

    async def summary(self, request: web.Request) -> web.Response:
        table: Table = self.deps.table_source.current()
        base = f"{request.scheme}://{request.host}/"
        return json_response(build_summary(table, self.deps.config, self.since, page_url=base))
