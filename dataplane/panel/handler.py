"""Serve a `mode: panel` route: choose the members, fan out, judge, synthesize, and pick the reply.

The run's state and bookkeeping are dataplane/panel/run.py; the replies (errors, the re-emitted stream, the
degraded answer) are dataplane/panel/replies.py; the prompts are dataplane/panel/prompts.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from controlplane.config import PanelConfig, RouteConfig
from dataplane.http.messages import Request, Response, StreamResponse
from dataplane.panel.members import answer_text, choose_members
from dataplane.panel.prompts import (
    DEFAULT_JUDGE_TEMPLATE,
    DEFAULT_SYNTHESIZER_TEMPLATE,
    TemplateError,
    check_template,
    numbered_answers,
    render,
    transcript,
)
from dataplane.panel.replies import below_quorum, client_error, error, single, stream_synthesis, synth_failed
from dataplane.panel.run import PanelRun, synth_ref
from dataplane.preferences import Preferences
from dataplane.selection import Plan
from dataplane.state import DataPlaneState

__all__ = ["handle_panel"]

_NOT_FOR_PANELS = ("tools", "functions", "tool_choice", "function_call")


def _templates(route: RouteConfig, panel: PanelConfig) -> tuple[str, str]:
    judge = panel.judge_template or DEFAULT_JUDGE_TEMPLATE
    synth = panel.synthesizer_template or DEFAULT_SYNTHESIZER_TEMPLATE
    check_template(judge, f"routes.{route.name}.panel.judge_template")
    check_template(synth, f"routes.{route.name}.panel.synthesizer_template")
    return judge, synth


async def handle_panel(
    request: Request,
    body: dict[str, Any],
    route_cfg: RouteConfig,
    *,
    state: DataPlaneState,
    prefs: Preferences,
    t0: float,
) -> Response | StreamResponse:
    """Serve one chat completion for a `mode: panel` route (the proxy has validated `model`, `messages`, `stream`)."""
    panel = route_cfg.panel
    if panel is None:
        return error(
            500, f"route {route_cfg.name!r} has mode panel but no panel section", "server_error", "panel_misconfigured"
        )
    for key in _NOT_FOR_PANELS:
        if body.get(key) is not None:
            return error(
                400,
                f"{key}: not supported on the panel route {route_cfg.name!r} (members answer in text)",
                "invalid_request_error",
                "unsupported_parameter",
                param=key,
            )
    try:
        judge_t, synth_t = _templates(route_cfg, panel)
    except TemplateError as exc:
        return error(500, f"panel misconfigured: {exc}", "server_error", "panel_misconfigured")
    run = PanelRun(state, route_cfg, panel, body, prefs, t0, state.rt.table_source.current())
    try:
        return await _serve(request, run, judge_t, synth_t)
    except asyncio.CancelledError:  # the client left (the proxy cancels its handler): every attempt was closed
        run.finish("client_gone", 499)
        raise


async def _serve(request: Request, run: PanelRun, judge_t: str, synth_t: str) -> Response | StreamResponse:
    panel, body, prefs, state = run.panel, run.body, run.prefs, run.st
    plans: list[Plan] = []
    for ref in panel.from_:
        plan = state.selector.plan(run.table, ref, prefs)
        if plan is None:
            run.notes.append(f"panel.from: {ref!r} is no longer a route or target")
            continue
        plans.append(plan)
        run.skipped.extend(plan.skipped)
    chosen, pool = choose_members(plans, panel.size, panel.distinct_providers)
    if len(chosen) < panel.size:
        run.notes.append(f"only {len(chosen)} admissible member(s) for a panel of {panel.size}")
    await run.fan_out(chosen, pool)
    survivors = run.survivors()
    if len(survivors) < panel.quorum:
        if run.client_error is not None and not survivors:
            return client_error(run)
        if panel.degrade_to_single and survivors:
            run.notes.append(f"below quorum ({len(survivors)} of {panel.quorum}): degraded to the best single answer")
            return await single(request, run, survivors[0])
        return below_quorum(run, len(survivors))
    question = transcript(body.get("messages") or [])
    answers = numbered_answers([a.text for a in survivors])
    values = {"question": question, "answers": answers, "count": str(len(survivors))}
    if panel.judge is not None:
        run.judge_input = render(judge_t, values)
        judged = await run.call(
            "judge", panel.judge, {"messages": [{"role": "user", "content": run.judge_input}]}, stream=False
        )
        if judged is not None:
            run.analysis = answer_text(judged.opened.response).strip() or None
        if run.analysis is None:
            run.notes.append("judge: no analysis (failed or empty); the synthesizer works from the answers alone")
    values["analysis"] = run.analysis or "(no analysis available)"
    return await _synthesize(request, run, render(synth_t, values))


async def _synthesize(request: Request, run: PanelRun, prompt: str) -> Response | StreamResponse:
    ref = synth_ref(run.panel)
    system = [
        m for m in run.body.get("messages") or [] if isinstance(m, dict) and m.get("role") in ("system", "developer")
    ]
    body = {k: v for k, v in run.body.items() if k not in ("messages", "stream_options")}
    body["messages"] = [*system, {"role": "user", "content": prompt}]
    if run.stream:
        body["stream_options"] = {"include_usage": True}  # the summed usage needs the synthesizer's own
    run.client_error = None  # a judge refusing our own prompt is not the client's mistake; the synthesizer's is
    got = await run.call("synthesizer", ref, body, stream=run.stream) if ref is not None else None
    if got is None:
        if run.client_error is not None:
            return client_error(run)
        if run.panel.degrade_to_single:
            run.notes.append("synthesizer failed: degraded to the best single answer")
            return await single(request, run, run.survivors()[0])
        return synth_failed(run)
    att, opened = got.attempt, got.opened
    run.final = att.cand
    if not run.stream:
        out = dict(opened.response or {})
        out["usage"] = run.usage()
        if run.prefs.debug:
            out["turnout"] = run.trail(full=True)
        run.finish("ok", 200, opened.ttft_s)
        return Response(body=orjson.dumps(out), content_type="application/json", headers=run.headers())
    return await stream_synthesis(request, run, att, opened)
