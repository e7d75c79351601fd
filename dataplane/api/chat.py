"""The chat completions handler (`POST /v1/chat/completions`, JSON and SSE): a thin client API over the one
failover loop (dataplane/failover.py).

Per request: parse and check the body, read the published table once and plan the candidates
(dataplane/selection.py), run the loop with retry-once, larger-context moves and hedging, and write the answer
in OpenAI's shape: the body (passed through when the upstream speaks OpenAI), the stream, the caller's own 4xx,
or a 503 listing every attempt. A stream fails over freely until its first chunk reaches the client; after that,
a failure ends the client's stream with an OpenAI-style error event, or on a route with `resume_streams: true`
is continued by the next target (dataplane/resume.py, the one resume path every client API takes). Every attempt
is observed and counted (dataplane/api/settle.py, shared with the other client APIs) and the request leaves one
decision-log record. Panel routes go to dataplane/panel/.

Finishing a request (metrics, span, key spend, decision record), its x-turnout-* headers, its trail and the 503's
text are the ones every client API uses (dataplane/api/settle.py). Its commit stays its own, not the pipeline's
(dataplane/api/pipeline.py): chat passes an OpenAI target's body through untouched and streams chat chunks as they
are, with no client-shape writer in between, which is what keeps the hot path short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from controlplane.domain import Classification, ErrorClass
from dataplane.api.intake import admit, identify, route_kind
from dataplane.api.settle import (
    LiveReport,
    exhaustion,
    finish_request,
    request_span,
    settle_stream,
    trail,
    trail_headers,
)
from dataplane.attempts import ClientGone, Opened, StreamEnd, UpstreamAttempt, sse_error_event
from dataplane.failover import Answer, AttemptOutcome, Exhausted, LoopOptions, first_answer
from dataplane.http.messages import Request, Response, StreamResponse, error_response
from dataplane.keys import Admission, openai_refusal
from dataplane.panel.handler import handle_panel
from dataplane.preferences import PreferenceError, Preferences, parse_preferences
from dataplane.resume import Part, StreamTap, continuation_body, parts_usage, resume
from dataplane.selection import Candidate, Plan
from dataplane.state import DATA_STATE, DataPlaneState

__all__ = ["chat_completions"]


@dataclass(slots=True)
class _Request:
    """What one client request carries through the failover loop."""

    plan: Plan
    prefs: Preferences
    body: dict[str, Any]
    stream: bool
    include_usage: bool
    admission: Admission | None = None  # the client key it came with (None: keys not required)
    tries: list[AttemptOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    span: Any = None  # the request's trace span when tracing is on (controlplane/tracing.py)
    started: int = 0  # upstream attempts the loop started (hedges included): each attempt span's turnout.attempt

    api_name = "chat"

    def trail(self) -> dict[str, Any]:
        return trail(self.plan, self.tries, self.notes)


def _bad_request(field: str, problem: str) -> Response:
    return error_response(400, f"{field}: {problem}", "invalid_request_error", "invalid_value", param=field)


async def chat_completions(request: Request) -> Response | StreamResponse:
    """`POST /v1/chat/completions`: parse and check the body, then panel routes to the panel, the rest to the loop."""
    st = request.app[DATA_STATE]
    st.config()
    rt = st.rt
    t0 = rt.clock.monotonic()
    caller = await identify(st, request.headers, openai_refusal)  # 401 before the body is even read
    if isinstance(caller, Response):
        return caller
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
    if route_kind(st, model) == "embedding":
        return _bad_request("model", f"{model!r} serves embedding models; call it with POST /v1/embeddings")
    admission = admit(st, caller, model, openai_refusal)  # 403 route, 429 limits and budget
    if isinstance(admission, Response):
        return admission
    route_cfg = st.routes.get(model)
    if route_cfg is not None and route_cfg.mode == "panel":
        return await handle_panel(request, body, route_cfg, state=st, prefs=prefs, t0=t0, admission=admission)
    plan = st.selector.plan(st.table(), model, prefs)
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
    req = _Request(plan, prefs, body, stream, include_usage, admission)
    req.span = request_span(request, "chat", plan, stream)
    return await _serve(request, st, req, t0)


async def _serve(request: Request, st: DataPlaneState, req: _Request, t0: float) -> Response | StreamResponse:
    dp = st.rt.config.dataplane
    options = LoopOptions(
        max_attempts=dp.max_attempts,
        deadline=asyncio.get_running_loop().time() + dp.total_timeout,
        stream=req.stream,
        retry_once=True,
        larger_context=True,
        hedging=req.plan.hedging,
        rand=st.rand,
    )

    def start(cand: Candidate) -> UpstreamAttempt:
        req.started += 1
        return st.attempt(
            cand,
            req.body,
            stream=req.stream,
            deadline=options.deadline,
            include_usage=req.include_usage,
            trace_parent=req.span,
            attempt=req.started,
        )

    try:
        answer = await first_answer(
            req.plan.candidates, start, LiveReport(st, req.plan.name), options, tried=req.tries, notes=req.notes
        )
    except Exhausted as exc:
        if exc.client_error is not None:
            return _client_error(st, req, *exc.client_error, t0)
        return _exhausted(st, req, t0)
    except asyncio.CancelledError:  # the client went away: every attempt was closed, nothing counts against them
        finish_request(st, req, None, "client_gone", 499, t0)
        raise
    return await _commit(request, st, req, answer, t0)


def _exhausted(st: DataPlaneState, req: _Request, t0: float) -> Response:
    finish_request(st, req, None, "exhausted", 503, t0)
    message, extra = exhaustion(req)
    return error_response(
        503, message, "service_unavailable", "no_admissible_target", headers=trail_headers(req, None), **extra
    )


def _client_error(st: DataPlaneState, req: _Request, opened: Opened, cand: Candidate, t0: float) -> Response:
    c = opened.classification
    status = c.status if c.status is not None and 400 <= c.status < 500 else 400
    finish_request(st, req, cand, "client_error", status, t0)
    headers = trail_headers(req, cand.target)
    if cand.adapter == "openai" and opened.body and opened.body.lstrip().startswith(b"{"):
        return Response(body=opened.body, status=status, content_type="application/json", headers=headers)
    return error_response(
        status, c.detail or "the request was rejected by the provider", "invalid_request_error", c.code, headers=headers
    )


async def _commit(
    request: Request, st: DataPlaneState, req: _Request, answer: Answer, t0: float
) -> Response | StreamResponse:
    att, opened, cand = answer.attempt, answer.opened, answer.cand
    headroom = opened.headroom.ratio if opened.headroom else None
    if not req.stream:
        att.close(reuse=True)
        st.outcomes.observe(
            cand, opened.classification, latency=opened.latency_s, ttft=opened.ttft_s, headroom=headroom
        )
        st.outcomes.attempt(req.plan.name, cand, ErrorClass.OK)
        usage = opened.response.get("usage") if opened.response else None
        finish_request(st, req, cand, "ok", 200, t0, usage, opened.ttft_s)
        headers = trail_headers(req, cand.target)
        if cand.adapter == "openai" and opened.body is not None and not req.prefs.debug:
            return Response(body=opened.body, content_type="application/json", headers=headers)  # pass-through
        out = dict(opened.response or {})
        if req.prefs.debug:
            out["turnout"] = req.trail()
        return Response(body=orjson.dumps(out), content_type="application/json", headers=headers)
    resp = StreamResponse(
        headers={**trail_headers(req, cand.target), "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    route = st.routes.get(req.plan.name)
    tap = StreamTap() if route is not None and route.resume_streams else None  # dataplane/resume.py
    end: StreamEnd
    try:
        await resp.prepare(request)

        async def emit(data: bytes) -> None:
            if data:
                try:
                    await resp.write(data)
                except (ConnectionError, RuntimeError) as exc:  # reset by peer / transport closed
                    raise ClientGone() from exc

        end = await att.pump(emit, opened.buffered, tap=tap, error_event=tap is None)
    except (ConnectionError, ClientGone):
        end = StreamEnd(Classification(ErrorClass.OK), client_gone=True)
    except asyncio.CancelledError:
        att.close()  # the client went away mid-stream: not the provider's fault, no observation
        finish_request(st, req, cand, "client_gone", 499, t0, att.usage)
        raise
    settle_stream(st, req.plan.name, req.tries, answer, end)
    if end.client_gone:
        # The client left (disconnect or its own timeout): never counts against the provider.
        finish_request(st, req, cand, "client_gone", 499, t0, end.usage, end.ttft_s)
        return resp
    parts = [Part(cand, end)]
    if tap is not None and not end.classification.ok:
        parts = await _resume(st, req, parts, tap, emit, t0)
        last = parts[-1].end
        if last.client_gone:
            finish_request(st, req, parts[-1].cand, "client_gone", 499, t0, parts_usage(parts), end.ttft_s, parts)
            return resp
        if not last.classification.ok:
            try:
                await emit(sse_error_event(last.classification))
            except ClientGone:
                pass
    c = parts[-1].end.classification
    outcome = ("resumed" if len(parts) > 1 else "ok") if c.ok else "stream_error"
    finish_request(st, req, parts[-1].cand, outcome, 200, t0, parts_usage(parts), end.ttft_s, parts)
    try:
        await resp.write_eof()
    except (ConnectionError, RuntimeError):
        pass
    return resp


async def _resume(
    st: DataPlaneState,
    req: _Request,
    parts: list[Part],
    tap: StreamTap,
    emit: Callable[[bytes], Awaitable[None]],
    t0: float,
) -> list[Part]:
    """The stream failed after content reached the client: the next admissible targets continue it."""

    def start(cand: Candidate, sent: str, deadline: float) -> UpstreamAttempt:
        req.started += 1
        return st.attempt(
            cand,
            continuation_body(req.body, sent, cand.adapter),
            stream=True,
            deadline=deadline,
            include_usage=req.include_usage,
            trace_parent=req.span,
            attempt=req.started,
        )

    async def pump(answer: Answer) -> StreamEnd:
        return await answer.attempt.pump(emit, answer.opened.buffered, tap=tap, error_event=False)

    try:
        return await resume(st, req, parts[0], tap, t0=t0, start=start, pump=pump)
    except asyncio.CancelledError:
        finish_request(st, req, None, "client_gone", 499, t0)
        raise
