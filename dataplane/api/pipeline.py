"""One request of any non-chat client API through the one failover loop, and its answer in that API's shape.

A client API (Responses, Messages, count_tokens, embeddings) is a `ClientApi`: it says which targets of a route
can serve it and why the others cannot, what to send each target (pass-through or translated, and with which
adapter), and how to write a JSON answer, a stream and an error in its own shape. `serve` does the rest the
same way for every API, as dataplane/api/chat.py does for chat: the candidates of the plan, the loop
(dataplane/failover.py) with retry-once, larger-context moves and hedging, a live observation and metrics for
every attempt (dataplane/outcomes.py), `x-turnout-*` and the client key's `x-ratelimit-*` headers, usage and
cost settled against the key's token limit and budget, one decision-log record naming the API and the key, and
with tracing on a SERVER span per request (GenAI conventions: `gen_ai.operation.name` `chat`, or `embeddings`)
whose child spans are the upstream attempts. A stream fails over freely until it is an answer; after that a
failure ends it with the API's own error event (the `ClientStream`), never a clean end; on a route with
`resume_streams: true` the next target continues it instead, written on in the same event sequence
(dataplane/resume.py). What each request and attempt leaves behind (spans, observations, spend) is
dataplane/api/settle.py's, shared with chat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from adapters.base import Adapter
from controlplane.domain import Classification, ErrorClass
from dataplane.api.intake import Intake
from dataplane.api.settle import (
    LiveReport,
    exhaustion,
    finish_request,
    request_span,
    settle_stream,
    trail,
    trail_headers,
)
from dataplane.attempts import ClientGone, Opened, StreamEnd, StreamWriter, UpstreamAttempt
from dataplane.failover import Answer, AttemptOutcome, Exhausted, LoopOptions, first_answer
from dataplane.http.messages import Request, Response, StreamResponse
from dataplane.keys import Admission
from dataplane.preferences import Preferences
from dataplane.resume import ChatView, Part, StreamTap, parts_usage, resume
from dataplane.selection import Candidate, Plan
from dataplane.state import DataPlaneState

__all__ = ["ClientApi", "ClientStream", "JsonOnly", "Call", "serve"]


class ClientStream(StreamWriter, Protocol):
    """A client API's stream writer that a resumed stream can carry on (dataplane/resume.py)."""

    def continued(self) -> StreamWriter:
        """The writer for a continuation's chat chunks: it carries on the event sequence this one has written
        (same ids, the open text block or item continued, indices and sequence numbers going on, one end)."""
        ...


class ClientApi(Protocol):
    """What one client API tells the pipeline about one request."""

    api: str  # named in the decision log and the request metrics: responses | messages | count_tokens | embeddings
    stream: bool
    larger_context: bool  # a context-length refusal may move to a larger window (not for embeddings)

    def unfit(self, cand: Candidate) -> str | None:
        """Why `cand` cannot serve this request (None: it can)."""
        ...

    def call(self, cand: Candidate) -> tuple[Adapter | None, dict[str, Any]]:
        """The adapter to speak to `cand` (None: its family's chat adapter) and the body to send."""
        ...

    def answer(self, cand: Candidate, opened: Opened, trail: dict[str, Any] | None) -> bytes:
        """The JSON answer in the client's shape (`trail` added when the caller asked for the decision)."""
        ...

    def writer(self, cand: Candidate) -> ClientStream:
        """The stream writer for `cand`'s stream in the client's shape."""
        ...

    def chat_view(self, cand: Candidate) -> ChatView | None:
        """How `cand`'s stream items read as chat chunks (None: they are chat chunks, a translated target's)."""
        ...

    def continuation(self, cand: Candidate, sent: str) -> tuple[Adapter | None, dict[str, Any]]:
        """As `call`, asking `cand` to continue the answer `sent` so far (dataplane/resume.py)."""
        ...

    def error(
        self, status: int, message: str, *, code: str | None, headers: Mapping[str, str] | None, **extra: Any
    ) -> Response:
        """An error answer in the client's shape."""
        ...

    def refusal(self, cand: Candidate, opened: Opened, status: int, headers: Mapping[str, str]) -> Response:
        """The caller's own mistake as the provider said it, in the client's shape."""
        ...

    def finished(self, cand: Candidate, result: dict[str, Any] | None) -> None:
        """The answer went to the client: `result` is the upstream's JSON answer; None for a stream (the API's
        own writer saw it)."""
        ...


class JsonOnly:
    """The stream side of a `ClientApi` that never streams (embeddings, count_tokens): asking for it is a bug."""

    def writer(self, cand: Candidate) -> ClientStream:
        raise TypeError(f"{type(self).__name__} does not stream")

    def chat_view(self, cand: Candidate) -> ChatView | None:
        raise TypeError(f"{type(self).__name__} does not stream")

    def continuation(self, cand: Candidate, sent: str) -> tuple[Adapter | None, dict[str, Any]]:
        raise TypeError(f"{type(self).__name__} does not stream")


@dataclass(slots=True)
class Call:
    """What one client request carries through the loop."""

    api: ClientApi
    plan: Plan
    prefs: Preferences
    admission: Admission | None = None  # the client key it came with (None: keys not required)
    tries: list[AttemptOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    span: Any = None  # the request's trace span when tracing is on (controlplane/tracing.py)
    started: int = 0  # upstream attempts the loop started (hedges included): each attempt span's turnout.attempt

    @property
    def api_name(self) -> str:
        return self.api.api

    @property
    def stream(self) -> bool:
        return self.api.stream

    def trail(self) -> dict[str, Any]:
        return trail(self.plan, self.tries, self.notes, self.api.api)


# GenAI semantic conventions' operation names: embeddings are their own; Responses, Messages and count_tokens (which
# the conventions do not name) are chat inference, told apart by turnout.api.
_OPERATION = {"embeddings": "embeddings"}


async def serve(request: Request, got: Intake, api: ClientApi, plan: Plan) -> Response | StreamResponse:
    """Run `api`'s request (admitted by dataplane.api.intake.plan_for) over `plan` and answer in its shape."""
    st, t0 = got.st, got.t0
    fit: list[Candidate] = []
    for cand in plan.candidates:
        why = api.unfit(cand)
        if why is None:
            fit.append(cand)
        else:
            plan.skipped.append((cand.target, why))
    unfit = len(plan.candidates) - len(fit)
    plan.candidates = fit
    call = Call(api, plan, got.prefs, got.admission)
    call.span = request_span(request, _OPERATION.get(api.api, "chat"), plan, api.stream, **{"turnout.api": api.api})
    if not fit and unfit:
        # Nothing on this route can serve this API (or this use of it): the caller's request, not an outage.
        reasons = "; ".join(f"{t}: {r}" for t, r in plan.skipped)
        finish_request(st, call, None, "client_error", 400, t0)
        return api.error(
            400, f"route {plan.name!r} cannot serve this request ({reasons})", code="unsupported", headers=None
        )
    dp = st.rt.config.dataplane
    options = LoopOptions(
        max_attempts=dp.max_attempts,
        deadline=asyncio.get_running_loop().time() + dp.total_timeout,
        stream=api.stream,
        retry_once=True,
        larger_context=api.larger_context,
        hedging=plan.hedging,
        rand=st.rand,
    )

    def start(cand: Candidate) -> UpstreamAttempt:
        adapter, body = api.call(cand)
        call.started += 1
        return st.attempt(
            cand,
            body,
            stream=api.stream,
            deadline=options.deadline,
            adapter=adapter,
            trace_parent=call.span,
            attempt=call.started,
        )

    try:
        answer = await first_answer(fit, start, LiveReport(st, plan.name), options, tried=call.tries, notes=call.notes)
    except Exhausted as exc:
        if exc.client_error is not None:
            opened, cand = exc.client_error
            c = opened.classification
            status = c.status if c.status is not None and 400 <= c.status < 500 else 400
            finish_request(st, call, cand, "client_error", status, t0)
            return api.refusal(cand, opened, status, trail_headers(call, cand.target))
        return _exhausted(st, call, t0)
    except asyncio.CancelledError:  # the client went away: every attempt was closed, nothing counts against them
        finish_request(st, call, None, "client_gone", 499, t0)
        raise
    return await _commit(request, st, call, answer, t0)


def _exhausted(st: DataPlaneState, call: Call, t0: float) -> Response:
    finish_request(st, call, None, "exhausted", 503, t0)
    message, extra = exhaustion(call)
    return call.api.error(503, message, code="no_admissible_target", headers=trail_headers(call, None), **extra)


async def _commit(
    request: Request, st: DataPlaneState, call: Call, answer: Answer, t0: float
) -> Response | StreamResponse:
    att, opened, cand = answer.attempt, answer.opened, answer.cand
    api, route = call.api, call.plan.name
    headroom = opened.headroom.ratio if opened.headroom else None
    if not api.stream:
        att.close(reuse=True)
        st.outcomes.observe(
            cand, opened.classification, latency=opened.latency_s, ttft=opened.ttft_s, headroom=headroom
        )
        st.outcomes.attempt(route, cand, ErrorClass.OK)
        usage = opened.response.get("usage") if opened.response else None
        finish_request(st, call, cand, "ok", 200, t0, usage, opened.ttft_s)
        body = api.answer(cand, opened, call.trail() if call.prefs.debug else None)
        api.finished(cand, opened.response)
        return Response(body=body, content_type="application/json", headers=trail_headers(call, cand.target))
    resp = StreamResponse(
        headers={**trail_headers(call, cand.target), "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    writer = api.writer(cand)
    route_cfg = st.routes.get(route)
    tap = StreamTap(api.chat_view(cand)) if route_cfg is not None and route_cfg.resume_streams else None
    end: StreamEnd
    try:
        await resp.prepare(request)

        async def emit(data: bytes) -> None:
            if data:
                try:
                    await resp.write(data)
                except (ConnectionError, RuntimeError) as exc:  # reset by peer / transport closed
                    raise ClientGone() from exc

        end = await att.pump(emit, opened.buffered, writer, tap=tap, error_event=tap is None)
    except (ConnectionError, ClientGone):
        end = StreamEnd(Classification(ErrorClass.OK), client_gone=True)
    except asyncio.CancelledError:
        att.close()  # the client went away mid-stream: not the provider's fault, no observation
        finish_request(st, call, cand, "client_gone", 499, t0, att.usage)
        raise
    settle_stream(st, route, call.tries, answer, end)
    if end.client_gone:
        finish_request(st, call, cand, "client_gone", 499, t0, end.usage, end.ttft_s)
        return resp
    parts = [Part(cand, end)]
    if tap is not None and not end.classification.ok:
        parts = await _resume(st, call, parts, tap, writer, emit, t0)
        last = parts[-1].end
        if last.client_gone:
            finish_request(st, call, parts[-1].cand, "client_gone", 499, t0, parts_usage(parts), end.ttft_s, parts)
            return resp
        if not last.classification.ok:
            current = writer.continued() if len(parts) > 1 else writer
            try:
                await emit(current.error(last.classification))
            except ClientGone:
                pass
    c = parts[-1].end.classification
    outcome = ("resumed" if len(parts) > 1 else "ok") if c.ok else "stream_error"
    finish_request(st, call, parts[-1].cand, outcome, 200, t0, parts_usage(parts), end.ttft_s, parts)
    if c.ok:
        api.finished(parts[-1].cand, None)  # the API's writer holds what it wrote
    try:
        await resp.write_eof()
    except (ConnectionError, RuntimeError):
        pass
    return resp


async def _resume(
    st: DataPlaneState,
    call: Call,
    parts: list[Part],
    tap: StreamTap,
    writer: ClientStream,
    emit: Callable[[bytes], Awaitable[None]],
    t0: float,
) -> list[Part]:
    """The stream failed after content reached the client: the next admissible targets continue it, written on by
    `writer`'s continuation in the client's event sequence."""
    api = call.api

    def start(cand: Candidate, sent: str, deadline: float) -> UpstreamAttempt:
        adapter, body = api.continuation(cand, sent)
        call.started += 1
        return st.attempt(
            cand, body, stream=True, deadline=deadline, adapter=adapter, trace_parent=call.span, attempt=call.started
        )

    async def pump(answer: Answer) -> StreamEnd:
        return await answer.attempt.pump(emit, answer.opened.buffered, writer.continued(), tap=tap, error_event=False)

    try:
        return await resume(st, call, parts[0], tap, t0=t0, start=start, pump=pump, view=api.chat_view)
    except asyncio.CancelledError:
        finish_request(st, call, None, "client_gone", 499, t0)
        raise
