"""How a panel call's outcome reaches the client: the OpenAI-shaped errors (below quorum, synthesizer
exhausted, a refused request), the synthesizer's stream re-emitted with the panel's summed usage, and the
degraded single answer as JSON or as a short stream. The orchestration that decides which of these applies
lives in dataplane/panel/handler.py, the run's state in dataplane/panel/run.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from controlplane.decisions import cost_usd
from controlplane.domain import Classification, ErrorClass
from dataplane.attempts import ClientGone, Opened, StreamEnd, UpstreamAttempt
from dataplane.http.messages import Request, Response, StreamResponse
from dataplane.outcomes import tokens
from dataplane.panel.members import MemberAnswer
from dataplane.panel.run import PanelRun

__all__ = [
    "below_quorum",
    "client_error",
    "error",
    "open_stream",
    "single",
    "stream_synthesis",
    "strip_usage",
    "synth_failed",
    "usage_chunk",
]

_DONE = b"data: [DONE]\n\n"


def error(
    status: int, message: str, type_: str, code: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """An OpenAI-shaped error response (`extra` adds fields such as `members` or `param`)."""
    body = {"error": {"message": message, "type": type_, "param": None, "code": code, **extra}}
    return Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


def client_error(run: PanelRun) -> Response:
    """The request was refused as the caller's own mistake: that 4xx goes back, like the proxy does."""
    assert run.client_error is not None
    opened, cand = run.client_error
    c = opened.classification
    status = c.status if c.status is not None and 400 <= c.status < 500 else 400
    run.final = cand
    run.finish("client_error", status)
    return error(
        status,
        c.detail or "the request was rejected by the provider",
        "invalid_request_error",
        c.code or "invalid_request",
        headers=run.headers(),
    )


def below_quorum(run: PanelRun, answered: int) -> Response:
    """A 503 `panel_quorum_not_met` listing every member call and its outcome."""
    members = [c.brief() for c in run.calls if c.stage == "member"]
    tried = ", ".join(f"{m['target']}: {m['outcome']}" for m in members) or "no admissible member"
    run.finish("below_quorum", 503)
    extra: dict[str, Any] = {"members": members}
    if run.prefs.debug:
        extra["turnout"] = run.trail(full=True)
    return error(
        503,
        f"panel {run.route.name!r}: {answered} of {run.panel.quorum} required members answered ({tried})",
        "service_unavailable",
        "panel_quorum_not_met",
        headers=run.headers(),
        **extra,
    )


def synth_failed(run: PanelRun) -> Response:
    """A 503 `no_admissible_target`: every synthesizer candidate failed before its answer could be committed."""
    calls = [c.brief() for c in run.calls if c.stage == "synthesizer"]
    tried = ", ".join(f"{c['target']}: {c['outcome']}" for c in calls) or "no admissible target"
    run.finish("exhausted", 503)
    extra: dict[str, Any] = {"attempts": calls}
    if run.prefs.debug:
        extra["turnout"] = run.trail(full=True)
    return error(
        503,
        f"panel {run.route.name!r}: the synthesizer could not answer ({tried})",
        "service_unavailable",
        "no_admissible_target",
        headers=run.headers(),
        **extra,
    )


def strip_usage(data: bytes) -> bytes:
    """Drop the upstream's own usage from stream bytes (the client gets the panel's sum at the end) and hold [DONE]."""
    if b'"usage"' not in data and _DONE not in data:
        return data
    out: list[bytes] = []
    for event in data.split(b"\n\n"):
        if not event or event.strip() == _DONE.strip():
            continue
        if b'"usage"' in event and event.startswith(b"data: {"):
            try:
                chunk = orjson.loads(event[6:])
            except orjson.JSONDecodeError:
                chunk = None
            if isinstance(chunk, dict) and "usage" in chunk:
                if not chunk.get("choices"):
                    continue  # the usage-only chunk
                chunk.pop("usage")
                event = b"data: " + orjson.dumps(chunk)
        out.append(event + b"\n\n")
    return b"".join(out)


def usage_chunk(run: PanelRun, meta: dict[str, Any]) -> bytes:
    """The one usage-only chunk a stream ends with (`stream_options.include_usage`): the panel's summed usage."""
    chunk = {
        "id": meta.get("id", "turnout-panel"),
        "object": "chat.completion.chunk",
        "created": meta.get("created", 0),
        "model": meta.get("model", run.route.name),
        "choices": [],
        "usage": run.usage(),
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def open_stream(request: Request, run: PanelRun) -> StreamResponse:
    """Send the SSE headers; with debug, the full trail first as an SSE comment."""
    resp = StreamResponse(
        headers={**run.headers(complete=False), "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    if run.prefs.debug:  # an SSE comment: clients skip it, a person reading the stream sees what happened
        await resp.write(b": turnout " + orjson.dumps(run.trail(full=True)) + b"\n\n")
    return resp


async def stream_synthesis(
    request: Request, run: PanelRun, att: UpstreamAttempt, opened: Opened
) -> Response | StreamResponse:
    """Forward the committed synthesizer stream without its own usage, then the summed usage and [DONE]."""
    cand = att.cand
    call = run.record("synthesizer", cand, opened.classification, opened.latency_s, observe=False)
    meta = next((i.chunk for i in opened.buffered if i.chunk is not None and i.chunk.get("id")), None) or {}
    resp: StreamResponse | None = None
    try:
        resp = await open_stream(request, run)

        async def emit(data: bytes) -> None:
            data = strip_usage(data)
            if data:
                try:
                    await resp.write(data)
                except (ConnectionError, RuntimeError) as exc:
                    raise ClientGone() from exc

        end = await att.pump(emit, opened.buffered)
    except (ConnectionError, ClientGone):
        end = StreamEnd(Classification(ErrorClass.OK), client_gone=True)
    except asyncio.CancelledError:
        att.close()  # the client left mid-stream: no observation; the tokens spent so far still count
        call.tokens_in, call.tokens_out = tokens(att.usage)
        call.cost_usd = cost_usd(call.tokens_in, call.tokens_out, cand.price_in, cand.price_out)
        raise
    att.close(reuse=end.classification.ok and not end.client_gone)
    call.tokens_in, call.tokens_out = tokens(end.usage)
    call.cost_usd = cost_usd(call.tokens_in, call.tokens_out, cand.price_in, cand.price_out)
    if end.client_gone:
        run.finish("client_gone", 499, end.ttft_s)
        return resp or StreamResponse()
    c = end.classification
    # Latency = to the first chunk, as plain streams report it: a long synthesis is not a slow call.
    run.st.outcomes.observe(cand, c, latency=opened.latency_s, ttft=end.ttft_s, headroom=None, duration=end.latency_s)
    assert resp is not None
    if c.ok:
        call.latency_s = end.latency_s
        try:
            if run.include_usage:
                await resp.write(usage_chunk(run, meta))
            await resp.write(_DONE)
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass
    else:
        call.outcome, call.status, call.detail = str(c.error_class), c.status, c.detail
    run.finish("ok" if c.ok else "stream_error", 200, end.ttft_s)
    return resp


async def single(request: Request, run: PanelRun, best: MemberAnswer) -> Response | StreamResponse:
    """Below quorum with `degrade_to_single`: the best (highest-ranked) member's answer, JSON or as a stream."""
    run.final = best.cand
    out = dict(best.response)
    out["usage"] = run.usage()
    if not run.stream:
        if run.prefs.debug:
            out["turnout"] = run.trail(full=True)
        run.finish("degraded", 200)
        return Response(body=orjson.dumps(out), content_type="application/json", headers=run.headers())
    meta = {
        "id": out.get("id", "turnout-panel"),
        "created": out.get("created", 0),
        "model": out.get("model", run.route.name),
    }
    choice = out["choices"][0] if isinstance(out.get("choices"), list) and out["choices"] else {}
    base = {**meta, "object": "chat.completion.chunk"}
    events = [
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": best.text}, "finish_reason": None}],
        },
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}]},
    ]
    resp: StreamResponse | None = None
    try:
        resp = await open_stream(request, run)
        await resp.write(b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events))
        if run.include_usage:
            await resp.write(usage_chunk(run, meta))
        await resp.write(_DONE)
        await resp.write_eof()
    except (ConnectionError, RuntimeError):  # the client left
        run.finish("client_gone", 499)
        return resp or StreamResponse()
    run.finish("degraded", 200)
    return resp
