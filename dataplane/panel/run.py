"""Panel routes: one request fans out to a healthy, provider-diverse panel; a judge compares the answers; a
synthesizer writes the final answer (streamed when the client streams).

Members come from the admissible targets of the route's `panel.from` routes/targets, in table order, one
per provider when `distinct_providers`. They run in parallel against one member deadline; a member that
fails (or answers nothing) is replaced by the next admissible target while time remains, otherwise dropped.
Below the quorum the client gets an OpenAI-shaped 503, or the best single answer with `degrade_to_single`.
The judge and the synthesizer are routes or targets and fail over like any route. Every upstream call is a
live observation; the whole panel call is one decision-log record with usage and estimated cost summed over
all calls. `x-turnout-debug: 1` adds the trail: members, latencies, outcomes and what the judge was given.
Writing the replies (errors, the re-emitted stream, the degraded answer) is dataplane/panel/replies.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from controlplane.config import PanelConfig, RouteConfig
from controlplane.decisions import Decision, cost_usd
from controlplane.domain import Classification, ErrorClass, Observation, Source
from controlplane.table import Table
from dataplane.attempts import Opened, UpstreamAttempt
from dataplane.http.messages import Request, Response, StreamResponse
from dataplane.keys import Admission
from dataplane.panel.prompts import (
    DEFAULT_JUDGE_TEMPLATE,
    DEFAULT_SYNTHESIZER_TEMPLATE,
    TemplateError,
    check_template,
    numbered_answers,
    render,
    transcript,
)
from dataplane.panel.replies import below_quorum, client_error, error, single, stream_synthesis, synth_failed, tokens
from dataplane.preferences import Preferences
from dataplane.selection import Candidate, Plan

if TYPE_CHECKING:
    from dataplane.proxy import DataPlaneState

__all__ = ["Call", "MemberAnswer", "PanelRun", "choose_members", "handle_panel", "sum_usage"]

_MIN_LEFT_S = 0.05  # a replacement needs at least this much of the member deadline left to be worth starting
_NOT_FOR_PANELS = ("tools", "functions", "tool_choice", "function_call")


@dataclass(slots=True)
class Call:
    """One upstream call made for a panel request (member, judge or synthesizer), for the trail and the log."""

    stage: str  # member | judge | synthesizer
    target: str
    outcome: str  # ok, an error class, "deadline" (cut by the member deadline) or "empty" (no answer text)
    status: int | None = None
    latency_s: float | None = None
    detail: str = ""
    slot: int | None = None  # member slot (a replacement keeps its slot)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0

    def brief(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "target": self.target,
            "outcome": self.outcome,
            "status": self.status,
            "latency_ms": None if self.latency_s is None else round(self.latency_s * 1000, 1),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": round(self.cost_usd, 8),
        }
        if self.slot is not None:
            out["slot"] = self.slot
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(slots=True)
class MemberAnswer:
    """A member that answered: its slot, its target and its text (the OpenAI-shaped response kept for degrading)."""

    slot: int
    cand: Candidate
    text: str
    response: dict[str, Any]


def sum_usage(calls: Sequence[Call]) -> dict[str, int]:
    """OpenAI-shaped usage summed over every call of a panel request."""
    tin = sum(c.tokens_in for c in calls)
    tout = sum(c.tokens_out for c in calls)
    return {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}


def choose_members(
    plans: Sequence[Plan], size: int, distinct_providers: bool
) -> tuple[list[Candidate], list[Candidate]]:
    """The first `size` members in table order (one per provider when `distinct_providers`), and the rest in
    order as replacements. `plans` hold admissible candidates only, one plan per `panel.from` entry."""
    chosen: list[Candidate] = []
    pool: list[Candidate] = []
    seen: set[str] = set()
    for plan in plans:
        for c in plan.candidates:
            if c.target in seen:
                continue
            seen.add(c.target)
            taken = distinct_providers and any(m.provider.id == c.provider.id for m in chosen)
            (chosen if len(chosen) < size and not taken else pool).append(c)
    return chosen, pool


def _text(response: dict[str, Any] | None) -> str:
    choices = response.get("choices") if response else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    msg = choices[0].get("message")
    content = msg.get("content") if isinstance(msg, dict) else None
    return content if isinstance(content, str) else ""


class PanelRun:
    """Everything one panel request carries through its stages."""

    def __init__(
        self,
        st: DataPlaneState,
        route: RouteConfig,
        panel: PanelConfig,
        body: dict[str, Any],
        prefs: Preferences,
        t0: float,
        table: Table,
    ) -> None:
        self.st, self.route, self.panel, self.body, self.prefs, self.t0, self.table = (
            st,
            route,
            panel,
            body,
            prefs,
            t0,
            table,
        )
        self.stream = body.get("stream") is True
        so = body.get("stream_options")
        self.include_usage = self.stream and isinstance(so, dict) and so.get("include_usage") is True
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + st.rt.config.dataplane.total_timeout
        self.calls: list[Call] = []
        self.answers: dict[int, MemberAnswer] = {}
        self.notes: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.judge_input: str | None = None
        self.analysis: str | None = None
        self.client_error: tuple[Opened, Candidate] | None = None
        self.final: Candidate | None = None
        self.finished = False
        self.admission: Admission | None = None  # the client key it came with (set by handle_panel)

    # -- one upstream call ------------------------------------------------------------------------
    def attempt(self, cand: Candidate, body: dict[str, Any], *, stream: bool, deadline: float) -> UpstreamAttempt:
        st = self.st
        assert st.pool is not None
        return UpstreamAttempt(
            st.pool,
            st.adapter(cand.adapter),
            cand,
            body,
            stream=stream,
            timeouts=st.timeouts,
            clock=st.rt.clock,
            deadline=deadline,
        )

    def record(
        self,
        stage: str,
        cand: Candidate,
        c: Classification,
        latency: float | None,
        *,
        slot: int | None = None,
        usage: Any = None,
        outcome: str | None = None,
        observe: bool = True,
        ttft: float | None = None,
        headroom: float | None = None,
    ) -> Call:
        """Log one call for the trail, count it, and report it as a live observation."""
        tin, tout = tokens(usage)
        call = Call(
            stage,
            cand.target,
            outcome or str(c.error_class),
            c.status,
            latency,
            c.detail,
            slot,
            tin,
            tout,
            cost_usd(tin, tout, cand.price_in, cand.price_out),
        )
        self.calls.append(call)
        rt = self.st.rt
        rt.metrics.child(
            rt.metrics.dataplane_attempts_total, self.route.name, cand.provider.id, cand.model, str(c.error_class)
        ).inc()
        if observe:
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
                )
            )
        return call

    async def call(
        self, stage: str, ref: str, body: dict[str, Any], *, stream: bool
    ) -> tuple[UpstreamAttempt, Opened] | None:
        """A judge or synthesizer call: the candidates of `ref` in order until one answers (failover)."""
        plan = self.st.selector.plan(self.table, ref, self.prefs)
        if plan is None:  # config validation names only known refs; a reload may have removed one since
            self.notes.append(f"{stage}: {ref!r} is no longer a route or target")
            return None
        self.skipped.extend(plan.skipped)
        for cand in plan.candidates[: self.st.rt.config.dataplane.max_attempts]:
            if self.loop.time() >= self.deadline:
                self.notes.append(f"{stage}: request deadline reached")
                break
            att = self.attempt(cand, body, stream=stream, deadline=self.deadline)
            try:
                opened = await att.open()
            except BaseException:
                att.close()
                raise
            headroom = opened.headroom.ratio if opened.headroom else None
            if opened.ok:
                if not stream:
                    att.close(reuse=True)
                    self.record(
                        stage,
                        cand,
                        opened.classification,
                        opened.latency_s,
                        ttft=opened.ttft_s,
                        headroom=headroom,
                        usage=(opened.response or {}).get("usage"),
                    )
                return att, opened
            att.close()
            self.record(stage, cand, opened.classification, opened.latency_s, ttft=opened.ttft_s, headroom=headroom)
            if opened.classification.error_class is ErrorClass.CLIENT_ERROR:
                self.client_error = self.client_error or (opened, cand)
                break  # the request itself was refused: another target would refuse it too
        return None

    # -- members ----------------------------------------------------------------------------------
    async def fan_out(self, chosen: list[Candidate], pool: list[Candidate]) -> None:
        """Run every member slot in parallel until each has an answer or is dropped, by the member deadline."""
        deadline = min(self.loop.time() + self.panel.member_deadline, self.deadline)
        busy: dict[int, str] = {}  # slot → provider id of its current (or answered) member
        failed: set[str] = set()
        body = {k: v for k, v in self.body.items() if k not in ("stream", "stream_options")}

        def replacement(slot: int) -> Candidate | None:
            others = {p for s, p in busy.items() if s != slot}
            # A provider whose member just failed is probably struggling: try every other provider first.
            for avoid_failed in (True, False):
                for c in pool:
                    if avoid_failed and c.provider.id in failed:
                        continue
                    if not (self.panel.distinct_providers and c.provider.id in others):
                        pool.remove(c)
                        return c
            return None

        async def run_slot(slot: int, cand: Candidate | None) -> None:
            while cand is not None:
                busy[slot] = cand.provider.id
                if await self.member(slot, cand, body, deadline):
                    return
                failed.add(cand.provider.id)
                del busy[slot]
                if self.client_error is not None:
                    return
                if deadline - self.loop.time() < _MIN_LEFT_S:
                    self.notes.append(f"slot {slot}: dropped, no time left for a replacement")
                    return
                cand = replacement(slot)
                if cand is None:
                    self.notes.append(f"slot {slot}: dropped, no admissible replacement left")
                else:
                    self.notes.append(f"slot {slot}: replaced by {cand.target}")

        async with asyncio.TaskGroup() as tg:  # a bug in one slot cancels the others instead of orphaning them
            for i, c in enumerate(chosen, 1):
                tg.create_task(run_slot(i, c))

    async def member(self, slot: int, cand: Candidate, body: dict[str, Any], deadline: float) -> bool:
        att = self.attempt(cand, body, stream=False, deadline=deadline)
        try:
            opened = await att.open()
        except BaseException:  # cancelled (the client left): release the connection, report nothing
            att.close()
            raise
        att.close(reuse=opened.ok)  # back to the pool only when the whole body was read
        c = opened.classification
        headroom = opened.headroom.ratio if opened.headroom else None
        if opened.ok:
            text = _text(opened.response)
            assert opened.response is not None
            self.record(
                "member",
                cand,
                c,
                opened.latency_s,
                slot=slot,
                usage=opened.response.get("usage"),
                outcome=None if text.strip() else "empty",
                ttft=opened.ttft_s,
                headroom=headroom,
            )
            if text.strip():
                self.answers[slot] = MemberAnswer(slot, cand, text, opened.response)
                return True
            return False
        # Cut by our own member deadline before the provider's first-byte timeout: not the provider's fault,
        # so it is not reported against the target (a tight panel deadline must not open healthy breakers).
        cut = (
            c.error_class is ErrorClass.TIMEOUT
            and self.loop.time() >= deadline - 0.01
            and (opened.latency_s is None or opened.latency_s < self.st.timeouts.first_byte)
        )
        call = self.record(
            "member",
            cand,
            c,
            opened.latency_s,
            slot=slot,
            outcome="deadline" if cut else None,
            observe=not cut,
            ttft=opened.ttft_s,
            headroom=headroom,
        )
        if cut:
            call.latency_s = call.latency_s if call.latency_s is not None else self.panel.member_deadline
            call.detail = f"no answer within the member deadline ({self.panel.member_deadline:g}s)"
        if c.error_class is ErrorClass.CLIENT_ERROR:
            self.client_error = self.client_error or (opened, cand)
        return False

    def survivors(self) -> list[MemberAnswer]:
        return [self.answers[s] for s in sorted(self.answers)]

    # -- bookkeeping ------------------------------------------------------------------------------
    def usage(self) -> dict[str, int]:
        return sum_usage(self.calls)

    def cost(self) -> float:
        return sum(c.cost_usd for c in self.calls)

    def trail(self, *, full: bool) -> dict[str, Any]:
        """The decision trail; `full` adds what the judge was given (too large for a header)."""
        judge: dict[str, Any] = {
            "ref": self.panel.judge,
            "calls": [c.brief() for c in self.calls if c.stage == "judge"],
            "given_chars": len(self.judge_input) if self.judge_input is not None else None,
        }
        if full:
            judge["given"] = self.judge_input
            judge["analysis"] = self.analysis
        return {
            "model": self.route.name,
            "mode": "panel",
            "table_version": self.table.version,
            "panel": {
                "from": list(self.panel.from_),
                "size": self.panel.size,
                "quorum": self.panel.quorum,
                "distinct_providers": self.panel.distinct_providers,
                "member_deadline_s": self.panel.member_deadline,
            },
            "members": [c.brief() for c in self.calls if c.stage == "member"],
            "survivors": [a.cand.target for a in self.survivors()],
            "judge": judge,
            "synthesizer": {
                "ref": _synth_ref(self.panel),
                "calls": [c.brief() for c in self.calls if c.stage == "synthesizer"],
            },
            "skipped": [{"target": t, "reason": r} for t, r in self.skipped],
            "notes": self.notes,
            "usage": self.usage(),
            "cost_usd": round(self.cost(), 8),
        }

    def headers(self, *, complete: bool = True) -> dict[str, str]:
        """Response headers; `complete` is False for a stream, whose cost is not known before it ends."""
        h = {
            "x-turnout-attempts": str(len(self.calls)),
            "x-turnout-table-version": str(self.table.version),
            "x-turnout-panel-members": ",".join(a.cand.target for a in self.survivors()),
        }
        if complete:
            h["x-turnout-cost-usd"] = f"{self.cost():.8f}"
        if self.final is not None:
            h["x-turnout-target"] = self.final.target
        if self.admission is not None:
            h.update(self.admission.headers)
        if self.prefs.debug:
            h["x-turnout-decision"] = json.dumps(self.trail(full=False), separators=(",", ":"), ensure_ascii=True)
        return h

    def finish(self, outcome: str, status: int, ttft: float | None = None) -> None:
        """Metrics and the one decision-log record for the whole panel call (only the first call counts)."""
        if self.finished:
            return
        self.finished = True
        st, rt = self.st, self.st.rt
        route = self.route.name
        latency = rt.clock.monotonic() - self.t0
        st.count_request(route, self.stream, outcome, latency)
        by_target: dict[str, tuple[Call, int, int, float]] = {}
        for c in self.calls:
            if c.tokens_in or c.tokens_out:
                _, tin, tout, cost = by_target.get(c.target, (c, 0, 0, 0.0))
                by_target[c.target] = (c, tin + c.tokens_in, tout + c.tokens_out, cost + c.cost_usd)
        for target, (_, tin, tout, cost) in by_target.items():
            st.count_usage(route, target, tin, tout, cost)
        u = self.usage()
        st.keys.settle(self.admission, u["prompt_tokens"] + u["completion_tokens"], self.cost())
        if st.decisions is not None:
            st.decisions.record(
                Decision(
                    at=rt.clock.wall(),
                    route=route,
                    target=self.final.target if self.final else None,
                    outcome=outcome,
                    status=status,
                    stream=self.stream,
                    attempts=[(c.target, c.outcome, c.status) for c in self.calls],
                    tokens_in=u["prompt_tokens"],
                    tokens_out=u["completion_tokens"],
                    cost_usd=self.cost(),
                    latency_s=latency,
                    ttft_s=ttft,
                    tag=self.prefs.tag,
                    table_version=self.table.version,
                    key_id=self.admission.caller.id if self.admission is not None else None,
                )
            )


def _synth_ref(panel: PanelConfig) -> str | None:
    """The synthesizer: as configured, else the judge, else the first panel source."""
    return panel.synthesizer or panel.judge or (panel.from_[0] if panel.from_ else None)


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
    admission: Admission | None = None,
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
    run.admission = admission
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
            run.analysis = _text(judged[1].response).strip() or None
        if run.analysis is None:
            run.notes.append("judge: no analysis (failed or empty); the synthesizer works from the answers alone")
    values["analysis"] = run.analysis or "(no analysis available)"
    return await _synthesize(request, run, render(synth_t, values))


async def _synthesize(request: Request, run: PanelRun, prompt: str) -> Response | StreamResponse:
    ref = _synth_ref(run.panel)
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
    att, opened = got
    run.final = att.cand
    if not run.stream:
        out = dict(opened.response or {})
        out["usage"] = run.usage()
        if run.prefs.debug:
            out["turnout"] = run.trail(full=True)
        run.finish("ok", 200, opened.ttft_s)
        return Response(body=orjson.dumps(out), content_type="application/json", headers=run.headers())
    return await stream_synthesis(request, run, att, opened)
