"""The status API's route table and `install(app, deps)`, which the control app calls.

One list of `Operation`s registers the aiohttp routes and generates `/openapi.json`. Every handler runs
behind the same wrapper: auth by scope, JSON errors (401/403/400/404/422) naming the field, and no
unexpected exception leaks a stack trace or a secret to the caller.

Longer than most modules (~470 lines): the route table is one list that both registers the handlers and
generates the OpenAPI document, and the small read-only handlers sit beside their entries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from controlplane.api import schemas as m
from controlplane.api.auth import AuthFailure, Principal, authorize
from controlplane.api.jsonio import ApiError, error_response, json_response, read_body
from controlplane.api.keys import key_operations
from controlplane.api.openapi import Operation, Param, build_document
from controlplane.api.status import MAX_ID, MAX_WAIT_S, WINDOWS, StatusHandlers
from controlplane.api.summary import SummaryResponse
from controlplane.api.webhooks_api import WebhookHandlers
from controlplane.errors import ConfigError, TurnoutError
from controlplane.events import EVENT_TYPES
from controlplane.seams import ControlApiDeps
from controlplane.version import __version__
from controlplane.webhooks.outbox import install_outbox

__all__ = ["install", "operations", "openapi_document", "PRINCIPAL_KEY"]

log = logging.getLogger("turnout.api")
PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("turnout_principal", Principal)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_PROVIDER = Param("provider", "path", {"type": "string", "minLength": 1})
_MODEL = Param("model", "path", {"type": "string", "minLength": 1}, description="may contain '/'")
_EP = Param("id", "path", {"type": "string", "minLength": 1})


class _Overrides:
    """Drain/undrain per target and per provider, and config reload (admin)."""

    def __init__(self, deps: ControlApiDeps, status: StatusHandlers) -> None:
        self.deps, self.status = deps, status

    def _provider(self, request: web.Request) -> str:
        pid = request.match_info["provider"]
        if self.deps.config.provider(pid) is None:
            raise ApiError(404, "not_found", f"unknown provider {pid[:80]!r}", "provider")
        return pid

    async def _apply(self, request: web.Request, action: str, target: str | None, provider: str | None) -> web.Response:
        who: Principal = request[PRINCIPAL_KEY]
        if action == "drain":
            body = await read_body(request, m.DrainRequest, required=False)
            await self.deps.drain(
                target=target, provider=provider, reason=body.reason, until=body.until, actor=who.name
            )
        else:
            ubody = await read_body(request, m.UndrainRequest, required=False)
            await self.deps.undrain(target=target, provider=provider, reason=ubody.reason, actor=who.name)
        version = self.deps.table_source.current().version
        return json_response(
            {"action": action, "target": target, "provider": provider, "actor": who.name, "table_version": version}
        )

    async def drain_target(self, request: web.Request) -> web.Response:
        return await self._apply(request, "drain", self.status.target_key(request), None)

    async def undrain_target(self, request: web.Request) -> web.Response:
        return await self._apply(request, "undrain", self.status.target_key(request), None)

    async def drain_provider(self, request: web.Request) -> web.Response:
        return await self._apply(request, "drain", None, self._provider(request))

    async def undrain_provider(self, request: web.Request) -> web.Response:
        return await self._apply(request, "undrain", None, self._provider(request))

    async def reload(self, request: web.Request) -> web.Response:
        try:
            cfg = await self.deps.reload_config(actor=request[PRINCIPAL_KEY].name)
        except ConfigError as exc:
            raise ApiError(422, "invalid_config", str(exc), exc.field or None) from None
        cfg = cfg if cfg is not None else self.deps.config
        return json_response({"config_hash": cfg.hash, "table_version": self.deps.table_source.current().version})


def operations(deps: ControlApiDeps) -> list[Operation]:
    """Every operation of the API, bound to `deps` (the OpenAPI document lists exactly these)."""
    st = StatusHandlers(deps)
    ov = _Overrides(deps, st)
    wh = WebhookHandlers(deps, install_outbox(deps.store, deps.clock))

    async def healthz(request: web.Request) -> web.Response:
        return json_response({"status": "ok", "version": __version__})

    async def readyz(request: web.Request) -> web.Response:
        store_ok = bool(await asyncio.to_thread(deps.store.ping))
        try:
            version: int | None = deps.table_source.current().version
        except Exception:  # no table published yet
            version = None
        checks = {"store": store_ok, "table": version is not None}
        # The node's own: whether store writes work (reads may while writes fail) and start() has finished.
        checks.update(deps.readiness_checks())
        ok = all(checks.values())
        return json_response(
            {"status": "ready" if ok else "not_ready", "checks": checks, "table_version": version}, 200 if ok else 503
        )

    async def openapi(request: web.Request) -> web.Response:
        return json_response(openapi_document(deps))

    after = Param(
        "after", "query", {"type": "integer", "minimum": 0, "maximum": MAX_ID}, description="a table version / event id"
    )
    wait = Param(
        "wait",
        "query",
        {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S},
        description="long-poll seconds (with after)",
    )
    types = Param(
        "type", "query", {"type": "array", "items": {"type": "string", "enum": list(EVENT_TYPES)}}, explode=True
    )
    limit = Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000})
    figures = Param(
        "figures",
        "query",
        {"type": "string", "enum": ["now"]},
        description="now: this version's order with the window's figures of now (no ETag; without after)",
    )
    etag = {200: {"ETag": "the table version, quoted"}, 304: {"ETag": "the current table version, quoted"}}
    o = Operation
    return [
        o("GET", "/healthz", "healthz", "Liveness", "ops", None, {200: m.StatusOk}, handler=healthz),
        o(
            "GET",
            "/readyz",
            "readyz",
            "Readiness: store reachable and a table loaded",
            "ops",
            None,
            {200: m.Readiness, 503: m.Readiness},
            handler=readyz,
        ),
        o("GET", "/openapi.json", "openapi", "This document", "ops", None, {200: None}, handler=openapi),
        o(
            "GET",
            "/api/v1/table",
            "getTable",
            "The ranked table (ETag; long-poll with after+wait)",
            "table",
            "read",
            {200: m.TableModel, 304: None},
            (after, wait, figures),
            handler=st.table,
            response_headers=etag,
        ),
        o(
            "GET",
            "/api/v1/routes",
            "listRoutes",
            "Every route's ranking",
            "table",
            "read",
            {200: m.RoutesResponse},
            handler=st.routes,
        ),
        o(
            "GET",
            "/api/v1/routes/{route}",
            "getRoute",
            "One route's ranking with reasons",
            "table",
            "read",
            {200: m.RouteModel},
            (Param("route", "path", {"type": "string", "minLength": 1}),),
            handler=st.route,
        ),
        o(
            "GET",
            "/api/v1/targets",
            "listTargets",
            "Every target's state",
            "targets",
            "read",
            {200: m.TargetsResponse},
            handler=st.targets,
        ),
        o(
            "GET",
            "/api/v1/targets/{provider}/{model}",
            "getTarget",
            "One target: state, why, window stats, latest observations",
            "targets",
            "read",
            {200: m.TargetDetail},
            (_PROVIDER, _MODEL),
            handler=st.target,
        ),
        o(
            "POST",
            "/api/v1/targets/{provider}/{model}/drain",
            "drainTarget",
            "Drain a target (operator override)",
            "overrides",
            "admin",
            {200: m.OverrideResponse},
            (_PROVIDER, _MODEL),
            m.DrainRequest,
            False,
            handler=ov.drain_target,
        ),
        o(
            "POST",
            "/api/v1/targets/{provider}/{model}/undrain",
            "undrainTarget",
            "Lift a target's drain",
            "overrides",
            "admin",
            {200: m.OverrideResponse},
            (_PROVIDER, _MODEL),
            m.UndrainRequest,
            False,
            handler=ov.undrain_target,
        ),
        o(
            "GET",
            "/api/v1/providers",
            "listProviders",
            "Per provider: status rolled up from targets and status page",
            "providers",
            "read",
            {200: m.ProvidersResponse},
            handler=st.providers,
        ),
        o(
            "POST",
            "/api/v1/providers/{provider}/drain",
            "drainProvider",
            "Drain every target of a provider",
            "overrides",
            "admin",
            {200: m.OverrideResponse},
            (_PROVIDER,),
            m.DrainRequest,
            False,
            handler=ov.drain_provider,
        ),
        o(
            "POST",
            "/api/v1/providers/{provider}/undrain",
            "undrainProvider",
            "Lift a provider's drain",
            "overrides",
            "admin",
            {200: m.OverrideResponse},
            (_PROVIDER,),
            m.UndrainRequest,
            False,
            handler=ov.undrain_provider,
        ),
        o(
            "GET",
            "/api/v1/events",
            "listEvents",
            "Event history (same payloads as webhooks), oldest first after `after`",
            "events",
            "read",
            {200: m.EventsPage},
            (after, types, limit),
            handler=st.events,
        ),
        o(
            "GET",
            "/api/v1/uptime",
            "getUptime",
            "Uptime % and error budget per target and provider",
            "uptime",
            "read",
            {200: m.UptimeResponse},
            (
                Param("window", "query", {"type": "string", "enum": list(WINDOWS)}),
                Param("target", "query", {"type": "string"}),
                Param("provider", "query", {"type": "string"}),
            ),
            handler=st.uptime,
        ),
        o(
            "GET",
            "/api/v2/summary.json",
            "summary",
            "Statuspage-shaped summary",
            "status",
            "read",
            {200: SummaryResponse},
            handler=st.summary,
        ),
        o(
            "POST",
            "/api/v1/config/reload",
            "reloadConfig",
            "Re-read the config file",
            "ops",
            "admin",
            {200: m.ReloadResponse},
            handler=ov.reload,
        ),
        o(
            "POST",
            "/api/v1/webhooks",
            "createWebhook",
            "Register an endpoint; the secret is shown once",
            "webhooks",
            "admin",
            {201: m.WebhookCreated},
            (),
            m.WebhookCreate,
            handler=wh.create,
        ),
        o(
            "GET",
            "/api/v1/webhooks",
            "listWebhooks",
            "Registered endpoints",
            "webhooks",
            "admin",
            {200: m.WebhooksResponse},
            handler=wh.list,
        ),
        o(
            "GET",
            "/api/v1/webhooks/{id}",
            "getWebhook",
            "One endpoint",
            "webhooks",
            "admin",
            {200: m.WebhookEndpointModel},
            (_EP,),
            handler=wh.get,
        ),
        o(
            "DELETE",
            "/api/v1/webhooks/{id}",
            "deleteWebhook",
            "Remove an endpoint and its queue",
            "webhooks",
            "admin",
            {204: None},
            (_EP,),
            handler=wh.delete,
        ),
        o(
            "POST",
            "/api/v1/webhooks/{id}/enable",
            "enableWebhook",
            "Re-enable a disabled endpoint; its queue resumes",
            "webhooks",
            "admin",
            {200: m.WebhookEndpointModel},
            (_EP,),
            handler=wh.enable,
        ),
        o(
            "POST",
            "/api/v1/webhooks/{id}/test",
            "testWebhook",
            "Send a webhook.test message to this endpoint",
            "webhooks",
            "admin",
            {202: m.WebhookTestResponse, 409: m.ErrorResponse},
            (_EP,),
            handler=wh.test,
        ),
        o(
            "GET",
            "/api/v1/webhooks/{id}/deliveries",
            "listDeliveries",
            "Deliveries: status, attempts, last error, response code",
            "webhooks",
            "admin",
            {200: m.DeliveriesResponse},
            (
                _EP,
                Param("status", "query", {"type": "string", "enum": ["pending", "delivered", "dead"]}),
                Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}),
            ),
            handler=wh.deliveries,
        ),
        o(
            "POST",
            "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
            "redeliver",
            "Queue a delivery again (same webhook-id)",
            "webhooks",
            "admin",
            {202: m.RedeliverResponse},
            (_EP, Param("delivery", "path", {"type": "string", "minLength": 1})),
            handler=wh.redeliver,
        ),
        *key_operations(deps),
    ]


_DOCS: dict[tuple[int, str, bool], dict[str, Any]] = {}


def openapi_document(deps: ControlApiDeps) -> dict[str, Any]:
    """The OpenAPI document for `deps`' current config (built once per config; reloads may change auth)."""
    key = (id(deps), deps.config.hash, deps.config.auth.public_read)
    doc = _DOCS.get(key)
    if doc is None:
        if len(_DOCS) > 16:  # reloads and tests create new keys; keep the cache small
            _DOCS.clear()
        doc = _DOCS[key] = build_document(operations(deps), public_read=deps.config.auth.public_read)
    return doc


def _guard(op: Operation, deps: ControlApiDeps) -> Handler:
    inner: Handler = op.handler

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            if op.scope is not None:
                request[PRINCIPAL_KEY] = authorize(request, deps.config.auth, op.scope)
            return await inner(request)
        except AuthFailure as exc:
            return error_response(
                exc.status, exc.code, exc.message, headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            )
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message, exc.field)
        except (ValueError, TurnoutError) as exc:  # the runtime refused an override (unknown name, bad time)
            return error_response(422, "rejected", str(exc)[:300])
        except web.HTTPException:
            raise
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return error_response(500, "internal_error", "internal error; see the server log")

    handler.__name__ = op.op_id
    return handler


@web.middleware
async def _json_router_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The router's own 404/405 answers become JSON errors under /api/ (other apps' paths are left alone)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status not in (404, 405):
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        what = "no such API path" if exc.status == 404 else f"method {request.method} not allowed here"
        return error_response(
            exc.status, "not_found" if exc.status == 404 else "method_not_allowed", what, headers=headers
        )


def install(app: web.Application, deps: ControlApiDeps) -> None:
    """Mount the status API, webhook management, /openapi.json, /healthz and /readyz on the control app."""
    app.middlewares.append(_json_router_errors)
    for op in operations(deps):
        path = op.path.replace("{model}", r"{model:[\s\S]+}")  # model names may contain '/'
        app.router.add_route(op.method, path, _guard(op, deps))
