"""What one client request leaves behind, the same for every client API (chat completions included): its SERVER
span, a live observation and metric for every attempt (`LiveReport` for the failed ones, `settle_stream` for a
committed stream), and its spend, each target's share of a resumed stream counted against that target."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from controlplane import tracing
from controlplane.decisions import Decision, cost_usd
from controlplane.domain import ErrorClass
from dataplane.attempts import Opened, StreamEnd
from dataplane.failover import Answer, AttemptOutcome
from dataplane.http.messages import Request
from dataplane.keys import Admission
from dataplane.outcomes import tokens
from dataplane.preferences import Preferences
from dataplane.selection import Candidate, Plan
from dataplane.state import DataPlaneState

__all__ = [
    "Finishing",
    "LiveReport",
    "Share",
    "exhaustion",
    "finish_request",
    "request_span",
    "end_request_span",
    "settle_stream",
    "spend",
    "trail",
    "trail_headers",
]


class Share(Protocol):
    """One target's share of an answer: a part of a resumed stream (dataplane/resume.py `Part`)."""

    @property
    def cand(self) -> Candidate: ...

    @property
    def end(self) -> StreamEnd: ...


class Finishing(Protocol):
    """What a client request carries that finishing it reads (chat's and the pipeline's)."""

    plan: Plan
    prefs: Preferences
    admission: Admission | None
    tries: list[AttemptOutcome]
    span: Any
    started: int

    @property
    def api_name(self) -> str:
        """The client API it came in by, as metrics and the decision log name it (chat | responses | …)."""
        ...

    @property
    def stream(self) -> bool: ...

    def trail(self) -> dict[str, Any]: ...


def trail(plan: Plan, tries: list[AttemptOutcome], notes: list[str], api: str | None = None) -> dict[str, Any]:
    """How a request was routed, for `x-turnout-decision` and a debug answer's `turnout` field (`api`: named
    by the client APIs other than chat completions)."""
    out: dict[str, Any] = {"api": api} if api is not None else {}
    out.update(
        model=plan.name,
        table_version=plan.table_version,
        candidates=[c.target for c in plan.candidates],
        skipped=[{"target": t, "reason": r} for t, r in plan.skipped],
        attempts=[t.brief() for t in tries],
        notes=notes,
    )
    return out


def trail_headers(req: Finishing, target: str | None) -> dict[str, str]:
    """The x-turnout-* headers (and a client key's x-ratelimit-*) of an answer, an error or a stream."""
    h = {"x-turnout-attempts": str(len(req.tries)), "x-turnout-table-version": str(req.plan.table_version)}
    if req.admission is not None:
        h.update(req.admission.headers)  # x-ratelimit-*: the one place client-key headers join an answer
    if target is not None:
        h["x-turnout-target"] = target
    if req.prefs.debug:
        h["x-turnout-decision"] = json.dumps(req.trail(), separators=(",", ":"), ensure_ascii=True)
    return h


def finish_request(
    st: DataPlaneState,
    req: Finishing,
    target: Candidate | None,
    outcome: str,
    status: int,
    t0: float,
    usage: Any = None,
    ttft: float | None = None,
    parts: Sequence[Share] | None = None,
) -> None:
    """Metrics, the trace span's end, the key's spend and the decision-log record of one finished client request
    (`parts`: a resumed stream's, each target's tokens and spend counted against it; `usage` their sum)."""
    rt = st.rt
    route = req.plan.name
    latency = rt.clock.monotonic() - t0
    api, stream = req.api_name, req.stream
    st.outcomes.request(route, stream, outcome, latency, api=api)
    tin, tout, cost = spend(st, route, target, usage, parts)
    if req.span is not None:
        end_request_span(req.span, req.started, req.tries, target, outcome, status, tin, tout)
        req.span = None
    st.keys.settle(req.admission, tin + tout, cost)
    if st.decisions is not None:
        st.decisions.record(
            Decision(
                at=rt.clock.wall(),
                route=route,
                target=target.target if target else None,
                outcome=outcome,
                status=status,
                stream=stream,
                attempts=[(t.target, t.label, t.status) for t in req.tries],
                tokens_in=tin,
                tokens_out=tout,
                cost_usd=cost,
                latency_s=latency,
                ttft_s=ttft,
                tag=req.prefs.tag,
                table_version=req.plan.table_version,
                api=api,
                key_id=req.admission.caller.id if req.admission is not None else None,
            )
        )


def exhaustion(req: Finishing) -> tuple[str, dict[str, Any]]:
    """The message and the extra fields of the 503 a request gets when no target answered: every attempt, and
    why each target was passed over (withdrawn, open, excluded by policy) when nothing was tried."""
    attempts = [{"target": t.target, "error_class": t.label, "status": t.status} for t in req.tries]
    skipped = [{"target": t, "reason": r} for t, r in req.plan.skipped]
    why = "; ".join(f"{s['target']}: {s['reason']}" for s in skipped)
    tried = ", ".join(f"{a['target']}: {a['error_class']}" for a in attempts) or (
        f"no admissible target: {why}" if why else "no admissible target"
    )
    extra: dict[str, Any] = {"attempts": attempts, "skipped": skipped}
    if req.prefs.debug:
        extra["turnout"] = req.trail()
    return f"no target could answer for {req.plan.name!r} ({tried})", extra


def request_span(request: Request, operation: str, plan: Plan, stream: bool, **attributes: Any) -> Any:
    """The SERVER span of one client request (None when tracing is off), continuing the client's traceparent."""
    if tracing.tracer() is None:
        return None
    return tracing.server_span(
        f"{operation} {plan.name}",
        request.headers,
        {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": plan.name,
            "turnout.route": plan.name,
            "turnout.table_version": plan.table_version,
            "turnout.stream": stream,
            **attributes,
        },
    )


def end_request_span(
    span: Any,
    started: int,
    tries: list[AttemptOutcome],
    target: Candidate | None,
    outcome: str,
    status: int,
    tin: int,
    tout: int,
) -> None:
    """Close a request's span with what came of it: status, the answering target and model, usage, the error."""
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("turnout.attempt", started)
    if target is not None:
        p = target.provider
        span.set_attribute("turnout.target", target.target)
        span.set_attribute("gen_ai.response.model", target.model)
        span.set_attribute("gen_ai.provider.name", tracing.genai_provider(target.adapter, p.flavor, p.base_url))
    if tin or tout:
        span.set_attribute("gen_ai.usage.input_tokens", tin)
        span.set_attribute("gen_ai.usage.output_tokens", tout)
    if outcome not in ("ok", "resumed"):  # a resumed stream reached its client whole
        last = tries[-1].error_class if tries else None
        tracing.failed(span, str(last) if outcome == "stream_error" and last is not None else outcome)
    span.end()


class LiveReport:
    """A failed attempt: a live observation and the attempt metric; a failover counted."""

    __slots__ = ("_st", "_route")

    def __init__(self, st: DataPlaneState, route: str) -> None:
        self._st, self._route = st, route

    def failed(self, cand: Candidate, opened: Opened) -> None:
        c = opened.classification
        headroom = opened.headroom.ratio if opened.headroom else None
        self._st.outcomes.observe(cand, c, latency=opened.latency_s, ttft=opened.ttft_s, headroom=headroom)
        self._st.outcomes.attempt(self._route, cand, c.error_class)

    def failing_over(self, error_class: ErrorClass) -> None:
        self._st.outcomes.failover(self._route, error_class)


def settle_stream(st: DataPlaneState, route: str, tries: list[AttemptOutcome], answer: Answer, end: StreamEnd) -> None:
    """A committed stream ended: release its connection, observe it, count it; a failure replaces its trail entry."""
    att, cand, opened = answer.attempt, answer.cand, answer.opened
    att.close(reuse=end.classification.ok and not end.client_gone)
    if end.client_gone:
        return  # the client left (disconnect or its own timeout): never counts against the provider
    c = end.classification
    headroom = opened.headroom.ratio if opened.headroom else None
    # latency = to the first chunk: a long generation is not a slow call (the breaker's slow-call rule reads latency)
    st.outcomes.observe(cand, c, latency=opened.latency_s, ttft=end.ttft_s, headroom=headroom, duration=end.latency_s)
    st.outcomes.attempt(route, cand, c.error_class)
    if not c.ok:
        tries[-1] = AttemptOutcome(cand.target, c.error_class, c.status, c.detail, end.latency_s)


def spend(
    st: DataPlaneState, route: str, target: Candidate | None, usage: Any, parts: Sequence[Share] | None = None
) -> tuple[int, int, float]:
    """Tokens in and out and the cost of one answer (`usage`), each target's share counted against it: a resumed
    stream's `parts` at their own targets' prices (`usage` is then their sum)."""
    tin, tout = tokens(usage)
    if parts is not None and len(parts) > 1:
        cost = 0.0
        for p in parts:
            pin, pout = tokens(p.end.usage)
            pc = cost_usd(pin, pout, p.cand.price_in, p.cand.price_out)
            cost += pc
            if pin or pout:
                st.outcomes.usage(route, p.cand.target, pin, pout, pc)
        return tin, tout, cost
    cost = cost_usd(tin, tout, target.price_in, target.price_out) if target is not None else 0.0
    if target is not None and (tin or tout):
        st.outcomes.usage(route, target.target, tin, tout, cost)
    return tin, tout, cost
