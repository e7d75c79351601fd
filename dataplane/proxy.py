"""The data-plane app: an OpenAI-compatible endpoint that sends each request to the best admissible target and
fails over inside the request.

`build_data_app(deps)` wires the handlers onto the data plane's own listener: `POST /v1/chat/completions`
(dataplane/api/chat.py, over the one failover loop in dataplane/failover.py), the other client APIs over the same
loop (dataplane/api/pipeline.py): `POST /v1/responses` and `GET /v1/responses/{id}`, `POST /v1/messages` and
`/v1/messages/count_tokens`, `POST /v1/embeddings`; `GET /v1/models` (OpenAI's or Anthropic's list shape), and
`GET /metrics` on a data replica. It owns the app's lifetime: the upstream pool, the decision log and the
client-key gate's ring reads (dataplane/keys.py) start and stop with it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from adapters.base import Adapter
from controlplane.api.metrics_endpoint import scrape
from controlplane.decisions import DecisionLog
from controlplane.seams import DataPlaneDeps
from dataplane.api.chat import chat_completions
from dataplane.api.embeddings import create_embeddings
from dataplane.api.messages import count_tokens, create_message
from dataplane.api.models import list_models
from dataplane.api.responses import RESPONSE_STORE, RESPONSES_PREFIX, create_response, get_response
from dataplane.api.responses_state import ResponseStore
from dataplane.http.messages import App, Request, Response
from dataplane.http.upstream import UpstreamPool
from dataplane.keys import KeyGate
from dataplane.state import DATA_STATE, DataPlaneState

__all__ = ["build_data_app", "DATA_STATE", "DataPlaneState"]


def build_data_app(
    deps: DataPlaneDeps,
    *,
    adapters: Mapping[str, Adapter] | None = None,
    rand: Callable[[], float] = random.random,
    serve_metrics: bool = False,
    keys: KeyGate | None = None,
    readiness: Callable[[], tuple[bool, dict[str, Any]]] | None = None,
) -> App:
    """The data-plane app, served by dataplane.http.listener (`start_listener(app, host, port)`), reading `deps`
    (controlplane/seams.py: DataPlaneDeps). `serve_metrics` adds `GET /metrics` (a data replica has no control app
    to serve them); `readiness` adds `GET /readyz` (a data replica: which table it serves and from where). `keys`
    checks client keys (none given: keys are never required unless `auth.data.require_key`, which then refuses
    every request).

    A client that disconnects (or gives up on its own timeout) cancels its handler at once (the listener does
    that), so the upstream attempt is abandoned and nothing is counted against the provider.
    """
    app = App(max_body_bytes=lambda: deps.config.server.max_body_bytes)  # read per request: reloads apply
    state = DataPlaneState(deps, adapters, rand, keys)
    app[DATA_STATE] = state
    app[RESPONSE_STORE] = ResponseStore(deps.clock, deps.config.dataplane.responses)
    app.add_route("POST", "/v1/chat/completions", chat_completions)
    app.add_route("POST", "/v1/responses", create_response)
    app.add_prefix_route("GET", RESPONSES_PREFIX, get_response)
    app.add_route("POST", "/v1/messages", create_message)
    app.add_route("POST", "/v1/messages/count_tokens", count_tokens)
    app.add_route("POST", "/v1/embeddings", create_embeddings)
    app.add_route("GET", "/v1/models", list_models)
    if serve_metrics:
        app.add_route("GET", "/metrics", _metrics)
    if readiness is not None:

        async def _readyz(request: Request) -> Response:
            ready, detail = readiness()
            return Response(orjson.dumps({"ready": ready, **detail}), status=200 if ready else 503)

        app.add_route("GET", "/readyz", _readyz)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    return app


async def _startup(app: App) -> None:
    st = app[DATA_STATE]
    # One pool of keep-alive connections for all upstreams (an idle list per origin), never a client per request.
    st.pool = UpstreamPool(connect_timeout=st.rt.config.dataplane.connect_timeout)
    # A data replica has no store: it forwards each record to the control plane with its outcome reports.
    st.decisions = DecisionLog(
        st.rt.decision_engine,
        st.rt.clock,
        retention_s=st.rt.config.dataplane.decision_log_retention,
        forward=st.rt.forward_decision,
    )
    await st.decisions.start()
    await st.keys.start()


async def _cleanup(app: App) -> None:
    st = app[DATA_STATE]
    await st.keys.stop()
    if st.decisions is not None:
        try:
            await st.decisions.stop()
        except Exception:  # the store is gone at shutdown: the records are lost, the shutdown is not
            pass
    if st.pool is not None:
        await st.pool.close()


async def _metrics(request: Request) -> Response:
    rt = request.app[DATA_STATE].rt
    status, body, headers = scrape(rt.metrics, rt.config.auth, request.headers.get("authorization", ""))
    return Response(body, status=status, content_type=headers.pop("Content-Type"), headers=headers)
