"""`GET /metrics`: the Prometheus exposition of the runtime's metric registry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from controlplane.metrics import CONTENT_TYPE, Metrics, render

__all__ = ["install", "metrics_handler"]


class _HasMetrics(Protocol):
    @property
    def metrics(self) -> Metrics: ...


def metrics_handler(metrics: Metrics) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler serving `metrics` (used by the control app and by data-plane-only replicas)."""

    async def handle(request: web.Request) -> web.Response:
        # Rendering walks every series under the registry's lock; it is fast (well under a millisecond per
        # hundred series), so it runs on the loop rather than paying a thread hop on every scrape.
        body = render(metrics)
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = CONTENT_TYPE  # carries the version parameter Prometheus negotiates on
        resp.headers["Cache-Control"] = "no-store"
        return resp

    return handle


def install(app: web.Application, rt: _HasMetrics) -> None:
    """Mount `GET /metrics` on `app`, reading `rt.metrics.registry` at every scrape."""
    app.router.add_get("/metrics", metrics_handler(rt.metrics))
