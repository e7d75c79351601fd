"""The control app: one aiohttp application on `server.control`, assembled from route installers.

Each installer module exposes `install(app, rt)`; modules not built yet are skipped (like the CLI's command
list). When the status API is absent, this module provides `/healthz` and `/readyz` itself.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from controlplane.version import __version__

__all__ = ["INSTALLERS", "build_control_app"]

log = logging.getLogger("turnout.control")

INSTALLERS: tuple[str, ...] = (
    "controlplane.api.routes",  # status API + webhooks management, /healthz, /readyz, /openapi.json
    "controlplane.statuspage",  # HTML status page at /
    "controlplane.api.metrics_endpoint",  # /metrics
    "controlplane.decisions",  # usage API
    "controlplane.scaleout.replication_api",  # scale-out: data replicas' outcome reports, GET /api/v1/leader
)


def build_control_app(rt: Any, installers: Sequence[str] = INSTALLERS) -> web.Application:
    """The control-plane app for runtime `rt` with every available installer mounted."""
    app = web.Application(client_max_size=rt.config.server.max_body_bytes)
    mounted: list[str] = []
    for name in installers:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # that part is not built yet
                log.debug("control app: %s not available", name)
                continue
            raise
        module.install(app, rt)
        mounted.append(name)
    if "controlplane.api.routes" not in mounted:
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/readyz", _readyz(rt))
    return app


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


def _readyz(rt: Any) -> Any:
    async def handle(request: web.Request) -> web.Response:
        store = getattr(rt, "store", None)
        ok = bool(getattr(rt, "started", False)) and store is not None and store.ping()
        ok = ok and bool(getattr(getattr(rt, "sink", None), "store_ok", True))  # writes failing: not ready
        table = rt.table_source.current() if getattr(rt, "table_source", None) is not None else None
        body = {"ready": ok, "table_version": table.version if table else None}
        return web.json_response(body, status=200 if ok else 503)

    return handle
