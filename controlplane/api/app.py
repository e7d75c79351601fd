"""The control app: one aiohttp application on `server.control`, assembled from the parts that serve on it.

The status API (with webhook management, /healthz, /readyz, /openapi.json), the HTML status page, /metrics, the
usage API and the replication API each mount their own routes; each is handed what it reads (controlplane/seams.py).
"""

from __future__ import annotations

from aiohttp import web

from controlplane import statuspage
from controlplane.api import metrics_endpoint, routes, usage
from controlplane.scaleout import replication_api
from controlplane.seams import ControlNode

__all__ = ["build_control_app"]


def build_control_app(node: ControlNode) -> web.Application:
    """The control-plane app for a started ControlPlane or ControlReplica."""
    app = web.Application(client_max_size=node.config.server.max_body_bytes)
    routes.install(app, node)  # status API + webhooks management, /healthz, /readyz, /openapi.json
    statuspage.install(app, node)  # HTML status page at /
    metrics_endpoint.install(app, node.metrics, node.config.auth)  # /metrics
    usage.install(app, node.store.engine, node.clock)  # GET /api/v1/usage
    replication_api.install(app, node)  # data replicas' outcome reports, GET /api/v1/leader
    return app
