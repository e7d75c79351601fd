"""The data plane: an OpenAI-compatible endpoint that sends each request to the best admissible target
and fails over inside the request.

`build_data_app(deps)` serves `POST /v1/chat/completions` (JSON and SSE) and `GET /v1/models`. Per request:
read the published table once, plan the candidates (dataplane/selection.py), try them in order with a total
deadline (dataplane/attempts.py), report every attempt's outcome into the observation pipe, and leave a
decision-log record. A stream fails over freely until its first chunk reaches the client; after that, a
failure ends the client's stream with an OpenAI-style error event.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from adapters.base import Adapter
from controlplane.api.metrics_endpoint import scrape
from controlplane.config import Config
from controlplane.decisions import Decision, DecisionLog, cost_usd
from controlplane.domain import Classification, ErrorClass, Observation, Source
from controlplane.seams import DataPlaneDeps
from dataplane.attempts import ClientGone, Opened, StreamEnd, Timeouts, UpstreamAttempt
from dataplane.hedging import hedged_open
from dataplane.http.messages import App, AppKey, Request, Response, StreamResponse, error_response
from dataplane.http.upstream import UpstreamPool
from dataplane.preferences import PreferenceError, Preferences, parse_preferences
from dataplane.selection import Candidate, Plan, Selector

__all__ = ["build_data_app", "DATA_STATE", "DataPlaneState"]

_R1_CLASSES = frozenset({ErrorClass.CONNECT, ErrorClass.SERVER_ERROR})
_R1_MIN_REMAINING_S = 1.0  # retry the same target only when this much of the request's deadline is left


@dataclass(slots=True)
class _Try:
    target: str
    error_class: ErrorClass
    status: int | None
    detail: str
    latency_s: float | None

    def brief(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "error_class": str(self.error_class),
            "status": self.status,
            "detail": self.detail,
            "latency_ms": None if self.latency_s is None else round(self.latency_s * 1000, 1),
        }


@dataclass(slots=True)
class _Request:
    """What one client request carries through the failover loop."""

    plan: Plan
    prefs: Preferences
    body: dict[str, Any]
    stream: bool
    include_usage: bool
    tries: list[_Try] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def trail(self) -> dict[str, Any]:
        return {
            "model": self.plan.name,
            "table_version": self.plan.table_version,
            "candidates": [c.target for c in self.plan.candidates],
            "skipped": [{"target": t, "reason": r} for t, r in self.plan.skipped],
            "attempts": [t.brief() for t in self.tries],
            "notes": self.notes,
        }


class DataPlaneState:
    """Per-app state: the data plane's dependencies (`rt`, see DataPlaneDeps), the pooled upstream connections,
    the selector and the decision log."""

    def __init__(self, deps: DataPlaneDeps, adapters: Mapping[str, Adapter] | None, rand: Callable[[], float]) -> None:
        self.rt = deps
        cfg = deps.config
        self.selector = Selector(cfg, rand)
        self.rand = rand
        self._adapters: dict[str, Adapter] = dict(adapters or {})
        self.pool: UpstreamPool | None = None
        self.decisions: DecisionLog | None = None
        self._bundles: dict[tuple[Any, ...], Any] = {}  # metric children resolved together per request kind
        self._apply(cfg)

    def _apply(self, cfg: Config) -> None:
        dp = cfg.dataplane
        self.timeouts = Timeouts(connect=dp.connect_timeout, first_byte=dp.first_byte_timeout, stall=dp.stall_timeout)
        if self.pool is not None:
            self.pool.connect_timeout = dp.connect_timeout
        self.routes = {r.name: r for r in cfg.routes}  # read per request: a dict, not a scan of the config
        self.models_body = orjson.dumps(
            {
                "object": "list",
                "data": [{"id": r.name, "object": "model", "created": 0, "owned_by": "turnout"} for r in cfg.routes],
            }
        )

    def config(self) -> Config:
        cfg = self.rt.config
        if cfg is not self.selector.config:  # reloaded: recompute what depended on the old config
            self.selector.reconfigure(cfg)
            self._apply(cfg)
        return cfg

    def adapter(self, name: str) -> Adapter:
        a = self._adapters.get(name)
        if a is None:
            from adapters.registry import get_adapter  # late: the registry imports every adapter module

            a = self._adapters[name] = get_adapter(name)
        return a

    def count_request(self, route: str, stream: bool, outcome: str, latency: float) -> None:
        """Metrics for one finished client request."""
        key = ("request", route, stream, outcome)
        pair = self._bundles.get(key)
        if pair is None:
            m = self.rt.metrics
            pair = self._bundles[key] = (
                m.dataplane_requests_total.labels(route, outcome),
                m.dataplane_request_duration_seconds.labels(route, "true" if stream else "false"),
            )
        pair[0].inc()
        pair[1].observe(latency)

    def count_usage(self, route: str, target: str, tokens_in: int, tokens_out: int, cost: float) -> None:
        """Tokens and estimated spend through one target (children for the three series cached together)."""
        key = ("usage", route, target)
        trio = self._bundles.get(key)
        if trio is None:
            m = self.rt.metrics
            provider, _, model = target.partition("/")
            trio = self._bundles[key] = (
                m.dataplane_tokens_total.labels(route, provider, model, "in"),
                m.dataplane_tokens_total.labels(route, provider, model, "out"),
                m.dataplane_cost_usd_total.labels(route, provider, model),
            )
        trio[0].inc(tokens_in)
        trio[1].inc(tokens_out)
        if cost:
            trio[2].inc(cost)


DATA_STATE: AppKey[DataPlaneState] = AppKey("turnout_data_plane")


def build_data_app(
    deps: DataPlaneDeps,
    *,
    adapters: Mapping[str, Adapter] | None = None,
    rand: Callable[[], float] = random.random,
    serve_metrics: bool = False,
    readiness: Callable[[], tuple[bool, dict[str, Any]]] | None = None,
) -> App:
    """The data-plane app, served by dataplane.http.listener (`start_listener(app, host, port)`), reading `deps`
    (controlplane/seams.py: DataPlaneDeps). `serve_metrics` adds `GET /metrics` (a data replica has no control app
    to serve them); `readiness` adds `GET /readyz` (a data replica: which table it serves and from where).

    A client that disconnects (or gives up on its own timeout) cancels its handler at once (the listener does
    that), so the upstream attempt is abandoned and nothing is counted against the provider.
    """
    app = App(max_body_bytes=lambda: deps.config.server.max_body_bytes)  # read per request: reloads apply
    state = DataPlaneState(deps, adapters, rand)
    app[DATA_STATE] = state
    app.add_route("POST", "/v1/chat/completions", _chat)
    app.add_route("GET", "/v1/models", _models)
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


async def _cleanup(app: App) -> None:
    st = app[DATA_STATE]
    if st.decisions is not None:
        try:
            await st.decisions.stop()
        except Exception:  # the store is gone at shutdown: the records are lost, the shutdown is not
            pass
    if st.pool is not None:
        await st.pool.close()


async def _models(request: Request) -> Response:
    st = request.app[DATA_STATE]
    st.config()
    return Response(st.models_body)


async def _metrics(request: Request) -> Response:
    rt = request.app[DATA_STATE].rt
    status, body, headers = scrape(rt.metrics, rt.config.auth, request.headers.get("authorization", ""))
    return Response(body, status=status, content_type=headers.pop("Content-Type"), headers=headers)


def _bad_request(field: str, problem: str) -> Response:
    return error_response(400, f"{field}: {problem}", "invalid_request_error", "invalid_value", param=field)


async def _chat(request: Request) -> Response | StreamResponse:
    st = request.app[DATA_STATE]
    st.config()
    rt = st.rt
    t0 = rt.clock.monotonic()
    try:  # the listener has read the whole body and held it to server.max_body_bytes (413 otherwise)
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        return _bad_request("body", f"not valid JSON ({exc.msg} at position {exc.pos})")
    if not isinstance(body, dict):
        return _bad_request("body", "expected a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _bad_request("model", "required: a route name or provider/model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _bad_request("messages", "required: a non-empty list of messages")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        return _bad_request("stream", "expected true or false")
    try:
        prefs = parse_preferences(body, request.headers)
    except PreferenceError as exc:
        return _bad_request(exc.field, exc.problem)
    route_cfg = st.routes.get(model)
    if route_cfg is not None and route_cfg.mode == "panel":
        from dataplane.panel.run import handle_panel  # late: the panel module imports this one's types

        return await handle_panel(request, body, route_cfg, state=st, prefs=prefs, t0=t0)
    plan = st.selector.plan(rt.table_source.current(), model, prefs)
    if plan is None:
        known = ", ".join(st.selector.models()) or "(none)"
        return error_response(
            404,
            f"model {model!r} is neither a route nor a provider/model target; routes: {known}",
            "invalid_request_error",
            "model_not_found",
            param="model",
        )
    include_usage = False
    if stream:
        so = body.get("stream_options")
        include_usage = isinstance(so, dict) and so.get("include_usage") is True
        # Always ask for usage: cost accounting needs it; the extra chunk is dropped if the client did not ask.
        body["stream_options"] = {**(so if isinstance(so, dict) else {}), "include_usage": True}
    req = _Request(plan, prefs, body, stream, include_usage)
    return await _serve(request, st, req, t0)


async def _serve(request: Request, st: DataPlaneState, req: _Request, t0: float) -> Response | StreamResponse:
    rt, cfg = st.rt, st.rt.config
    dp = cfg.dataplane
    loop = asyncio.get_running_loop()
    deadline = loop.time() + dp.total_timeout
    queue: list[Candidate] = list(req.plan.candidates)
    retried: set[str] = set()
    last_client_error: tuple[Opened, Candidate] | None = None
    first = True
    while queue and len(req.tries) < dp.max_attempts and loop.time() < deadline:
        cand = queue.pop(0)
        att = _attempt(st, cand, req, deadline)
        hedge = req.plan.hedging if first and queue else None
        first = False
        try:
            if hedge is not None:
                p95 = cand.ttft_p95_s if req.stream else cand.latency_p95_s
                second_cand = queue[0]
                result = await hedged_open(
                    att,
                    lambda second_cand=second_cand: _attempt(st, second_cand, req, deadline),
                    max(hedge.min_delay, p95 or 0.0),
                )
                for lost, lost_opened in result.failed:
                    _record_failure(st, req, lost.cand, lost_opened)
                    lost.close()
                if result.hedged:
                    req.notes.append(
                        f"hedged: {second_cand.target} started after {max(hedge.min_delay, p95 or 0.0):.3f}s"
                    )
                    queue.remove(second_cand)
                if result.winner is None:
                    continue
                att, opened = result.winner
                cand = att.cand
            else:
                opened = await att.open()
        except asyncio.CancelledError:
            att.close()  # the client went away (handler cancelled): nothing counts against the provider
            _finish(st, req, None, "client_gone", 499, t0)
            raise
        if opened.ok:
            return await _commit(request, st, req, att, opened, t0)
        c = opened.classification
        _record_failure(st, req, cand, opened)
        att.close()
        if c.error_class is ErrorClass.CLIENT_ERROR:
            if c.context_exceeded:
                larger = [
                    x
                    for x in queue
                    if x.context_window and (cand.context_window is None or x.context_window > cand.context_window)
                ]
                if larger:
                    req.notes.append(f"context_exceeded at {cand.target}: moving to a larger context window")
                    queue = larger
                    continue
            last_client_error = (opened, cand)
            break  # the caller's own mistake: no other target would answer differently
        if (
            c.error_class in _R1_CLASSES
            and cand.target not in retried
            and c.should_retry is not False
            and deadline - loop.time() > _R1_MIN_REMAINING_S
        ):
            retried.add(cand.target)
            if c.error_class is ErrorClass.SERVER_ERROR:
                await asyncio.sleep(0.02 + 0.08 * st.rand())  # jitter: do not hit a struggling server in lockstep
            req.notes.append(f"retry {cand.target} once after {c.error_class}")
            queue.insert(0, cand)
            continue
        if queue:
            rt.metrics.child(rt.metrics.dataplane_failovers_total, req.plan.name, str(c.error_class)).inc()
    if last_client_error is not None:
        return _client_error(st, req, *last_client_error, t0)
    return _exhausted(st, req, t0)


def _attempt(st: DataPlaneState, cand: Candidate, req: _Request, deadline: float) -> UpstreamAttempt:
    assert st.pool is not None
    return UpstreamAttempt(
        st.pool,
        st.adapter(cand.adapter),
        cand,
        req.body,
        stream=req.stream,
        timeouts=st.timeouts,
        clock=st.rt.clock,
        deadline=deadline,
        include_usage=req.include_usage,
    )


def _observe(
    st: DataPlaneState,
    cand: Candidate,
    c: Classification,
    latency: float | None,
    ttft: float | None,
    headroom: float | None,
    duration: float | None = None,
) -> None:
    rt = st.rt
    rt.sink.submit(
        Observation(
            target=cand.target,
            at=rt.clock.wall(),
            source=Source.LIVE,
            kind="live",
            error_class=c.error_class,
            latency_s=latency,
            ttft_s=ttft,
            status=c.status,
            headroom=headroom,
            retry_after_s=c.retry_after_s,
            scope=c.scope,
            code=c.code,
            detail=c.detail,
            extra={"stream_duration_s": duration} if duration is not None else {},
        )
    )


def _record_failure(st: DataPlaneState, req: _Request, cand: Candidate, opened: Opened) -> None:
    c = opened.classification
    req.tries.append(_Try(cand.target, c.error_class, c.status, c.detail, opened.latency_s))
    _observe(st, cand, c, opened.latency_s, opened.ttft_s, opened.headroom.ratio if opened.headroom else None)
    st.rt.metrics.child(
        st.rt.metrics.dataplane_attempts_total, req.plan.name, cand.provider.id, cand.model, str(c.error_class)
    ).inc()


def _headers(req: _Request, target: str | None) -> dict[str, str]:
    h = {"x-turnout-attempts": str(len(req.tries)), "x-turnout-table-version": str(req.plan.table_version)}
    if target is not None:
        h["x-turnout-target"] = target
    if req.prefs.debug:
        h["x-turnout-decision"] = json.dumps(req.trail(), separators=(",", ":"), ensure_ascii=True)
    return h


def _tokens(usage: Mapping[str, Any] | None) -> tuple[int, int]:
    if not usage:
        return 0, 0
    tin = usage.get("prompt_tokens", usage.get("input_tokens", 0))
    tout = usage.get("completion_tokens", usage.get("output_tokens", 0))
    return (int(tin) if isinstance(tin, int) else 0), (int(tout) if isinstance(tout, int) else 0)


def _finish(
    st: DataPlaneState,
    req: _Request,
    target: Candidate | None,
    outcome: str,
    status: int,
    t0: float,
    usage: Mapping[str, Any] | None = None,
    ttft: float | None = None,
) -> None:
    """Metrics and the decision-log record for one finished client request."""
    rt = st.rt
    route = req.plan.name
    latency = rt.clock.monotonic() - t0
    st.count_request(route, req.stream, outcome, latency)
    tin, tout = _tokens(usage)
    cost = cost_usd(tin, tout, target.price_in, target.price_out) if target is not None else 0.0
    if target is not None and (tin or tout):
        st.count_usage(route, target.target, tin, tout, cost)
    if st.decisions is not None:
        st.decisions.record(
            Decision(
                at=rt.clock.wall(),
                route=route,
                target=target.target if target else None,
                outcome=outcome,
                status=status,
                stream=req.stream,
                attempts=[(t.target, str(t.error_class), t.status) for t in req.tries],
                tokens_in=tin,
                tokens_out=tout,
                cost_usd=cost,
                latency_s=latency,
                ttft_s=ttft,
                tag=req.prefs.tag,
                table_version=req.plan.table_version,
            )
        )


def _exhausted(st: DataPlaneState, req: _Request, t0: float) -> Response:
    attempts = [{"target": t.target, "error_class": str(t.error_class), "status": t.status} for t in req.tries]
    # Nothing tried: say why each target was passed over (withdrawn, open, excluded by policy), from the table.
    skipped = [{"target": t, "reason": r} for t, r in req.plan.skipped]
    why = "; ".join(f"{s['target']}: {s['reason']}" for s in skipped)
    tried = ", ".join(f"{a['target']}: {a['error_class']}" for a in attempts) or (
        f"no admissible target: {why}" if why else "no admissible target"
    )
    _finish(st, req, None, "exhausted", 503, t0)
    extra: dict[str, Any] = {"attempts": attempts, "skipped": skipped}
    if req.prefs.debug:
        extra["turnout"] = req.trail()
    return error_response(
        503,
        f"no target could answer for {req.plan.name!r} ({tried})",
        "service_unavailable",
        "no_admissible_target",
        headers=_headers(req, None),
        **extra,
    )


def _client_error(st: DataPlaneState, req: _Request, opened: Opened, cand: Candidate, t0: float) -> Response:
    c = opened.classification
    status = c.status if c.status is not None and 400 <= c.status < 500 else 400
    _finish(st, req, cand, "client_error", status, t0)
    headers = _headers(req, cand.target)
    if cand.adapter == "openai" and opened.body and opened.body.lstrip().startswith(b"{"):
        return Response(body=opened.body, status=status, content_type="application/json", headers=headers)
    return error_response(
        status, c.detail or "the request was rejected by the provider", "invalid_request_error", c.code, headers=headers
    )


async def _commit(
    request: Request, st: DataPlaneState, req: _Request, att: UpstreamAttempt, opened: Opened, t0: float
) -> Response | StreamResponse:
    cand = att.cand
    req.tries.append(_Try(cand.target, ErrorClass.OK, opened.classification.status, "", opened.latency_s))
    headroom = opened.headroom.ratio if opened.headroom else None
    metrics = st.rt.metrics
    if not req.stream:
        att.close(reuse=True)
        _observe(st, cand, opened.classification, opened.latency_s, opened.ttft_s, headroom)
        metrics.child(metrics.dataplane_attempts_total, req.plan.name, cand.provider.id, cand.model, "ok").inc()
        usage = opened.response.get("usage") if opened.response else None
        _finish(st, req, cand, "ok", 200, t0, usage, opened.ttft_s)
        headers = _headers(req, cand.target)
        if cand.adapter == "openai" and opened.body is not None and not req.prefs.debug:
            return Response(body=opened.body, content_type="application/json", headers=headers)  # pass-through
        out = dict(opened.response or {})
        if req.prefs.debug:
            out["turnout"] = req.trail()
        return Response(body=orjson.dumps(out), content_type="application/json", headers=headers)
    resp = StreamResponse(
        headers={**_headers(req, cand.target), "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    end: StreamEnd
    try:
        await resp.prepare(request)

        async def emit(data: bytes) -> None:
            if data:
                try:
                    await resp.write(data)
                except (ConnectionError, RuntimeError) as exc:  # reset by peer / transport closed
                    raise ClientGone() from exc

        end = await att.pump(emit, opened.buffered)
    except (ConnectionError, ClientGone):
        end = StreamEnd(Classification(ErrorClass.OK), client_gone=True)
    except asyncio.CancelledError:
        att.close()  # the client went away mid-stream: not the provider's fault, no observation
        _finish(st, req, cand, "client_gone", 499, t0, att.usage)
        raise
    att.close(reuse=end.classification.ok and not end.client_gone)
    c = end.classification
    if end.client_gone:
        # The client left (disconnect or its own timeout): never counts against the provider.
        _finish(st, req, cand, "client_gone", 499, t0, end.usage, end.ttft_s)
        return resp
    # latency = to the first chunk: a long generation is not a slow call (the breaker's slow-call rule reads latency)
    _observe(st, cand, c, opened.latency_s, end.ttft_s, headroom, duration=end.latency_s)
    metrics.child(
        metrics.dataplane_attempts_total, req.plan.name, cand.provider.id, cand.model, str(c.error_class)
    ).inc()
    if not c.ok:
        req.tries[-1] = _Try(cand.target, c.error_class, c.status, c.detail, end.latency_s)
    _finish(st, req, cand, "ok" if c.ok else "stream_error", 200, t0, end.usage, end.ttft_s)
    try:
        await resp.write_eof()
    except (ConnectionError, RuntimeError):
        pass
    return resp
