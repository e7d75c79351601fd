"""`GET /metrics`: the Prometheus exposition of the runtime's metric registry.

Open when `config.auth.public_read` is true (the default), like every read endpoint; otherwise the scraper
sends a configured token (`authorization: {type: Bearer, credentials: …}` in its scrape config).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from controlplane.config import AuthConfig
from controlplane.metrics import CONTENT_TYPE, Metrics, render

__all__ = ["install", "metrics_handler", "scrape"]


def _authorized(authorization: str, auth: AuthConfig | None) -> bool:
    if auth is None or auth.public_read:
        return True
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return False
    given, ok = value.strip().encode(), False
    for t in auth.tokens:  # compare against every token: the time taken does not reveal which one matched
        ok |= hmac.compare_digest(given, t.token.get_secret_value().encode())
    return ok


def metrics_handler(
    metrics: Metrics, auth: AuthConfig | None = None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler serving `metrics` (used by the control app and by data-plane-only replicas); `auth` is
    `config.auth` (None: open)."""

    async def handle(request: web.Request) -> web.Response:
        status, body, headers = scrape(metrics, auth, request.headers.get("Authorization", ""))
        resp = web.Response(body=body, status=status)
        resp.headers.update(headers)  # Content-Type carries the version parameter Prometheus negotiates on
        return resp

    return handle


def scrape(metrics: Metrics, auth: AuthConfig | None, authorization: str) -> tuple[int, bytes, dict[str, str]]:
    """Status, body and headers of one scrape (`authorization`: the request's Authorization header, or "")."""
    if not _authorized(authorization, auth):
        return (
            401,
            b"/metrics needs a bearer token (auth.public_read is false)",
            {"Content-Type": "text/plain; charset=utf-8", "WWW-Authenticate": 'Bearer realm="turnout"'},
        )
    # Rendering walks every series under the registry's lock; it is fast (well under a millisecond per hundred
    # series), so it runs on the loop rather than paying a thread hop on every scrape.
    return 200, render(metrics), {"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}


def install(app: web.Application, metrics: Metrics, auth: AuthConfig | None = None) -> None:
    """Mount `GET /metrics` on `app`, reading `metrics.registry` at every scrape; `auth` as in metrics_handler."""
    app.router.add_get("/metrics", metrics_handler(metrics, auth))
