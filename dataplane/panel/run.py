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
from typing import Any

from controlplane.config import PanelConfig, RouteConfig
from controlplane.decisions import Decision, cost_usd
from controlplane.domain import Classification, ErrorClass
from controlplane.table import Table
from dataplane.attempts import Opened, UpstreamAttempt
from dataplane.failover import Answer, Exhausted, LoopOptions, first_answer
from dataplane.outcomes import tokens
from dataplane.panel.members import MemberAnswer, answer_text
from dataplane.panel.trail import Call, sum_usage
from dataplane.preferences import Preferences
from dataplane.selection import Candidate
from dataplane.state import DataPlaneState

__all__ = ["PanelRun", "synth_ref"]

_MIN_LEFT_S = 0.05  # a replacement needs at least this much of the member deadline left to be worth starting


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

    # -- one upstream call ------------------------------------------------------------------------
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
        self.st.outcomes.attempt(self.route.name, cand, c.error_class)
        if observe:
            self.st.outcomes.observe(cand, c, latency=latency, ttft=ttft, headroom=headroom)
        return call

    async def call(self, stage: str, ref: str, body: dict[str, Any], *, stream: bool) -> Answer | None:
        """A judge or synthesizer call: the candidates of `ref` through the one failover loop (dataplane/failover.py)."""
        plan = self.st.selector.plan(self.table, ref, self.prefs)
        if plan is None:  # config validation names only known refs; a reload may have removed one since
            self.notes.append(f"{stage}: {ref!r} is no longer a route or target")
            return None
        self.skipped.extend(plan.skipped)
        options = LoopOptions(
            max_attempts=self.st.rt.config.dataplane.max_attempts, deadline=self.deadline, stream=stream
        )

        def start(cand: Candidate) -> UpstreamAttempt:
            return self.st.attempt(cand, body, stream=stream, deadline=self.deadline)

        try:
            answer = await first_answer(plan.candidates, start, _StageReport(self, stage), options)
        except Exhausted as exc:
            if exc.deadline_reached:
                self.notes.append(f"{stage}: request deadline reached")
            if exc.client_error is not None:  # the request itself was refused: another target would refuse it too
                self.client_error = self.client_error or exc.client_error
            return None
        if not stream:
            opened = answer.opened
            answer.attempt.close(reuse=True)
            self.record(
                stage,
                answer.cand,
                opened.classification,
                opened.latency_s,
                ttft=opened.ttft_s,
                headroom=opened.headroom.ratio if opened.headroom else None,
                usage=(opened.response or {}).get("usage"),
            )
        return answer

    # -- members ----------------------------------------------------------------------------------
    async def fan_out(self, chosen: list[Candidate], pool: list[Candidate]) -> None:
        """Run every member slot in parallel until each has an answer or is dropped, by the member deadline.

        Each slot is one run of the failover loop (dataplane/failover.py) starting from its chosen member: its next
        candidate comes from `replacement`, asked only when the previous one failed (a provider no other slot holds,
        the ones that just failed last), an empty answer is not usable, and a cut by the member deadline is not
        reported against the target (_MemberReport).
        """
        deadline = min(self.loop.time() + self.panel.member_deadline, self.deadline)
        busy: dict[int, str] = {}  # slot → provider id of its current (or answered) member
        failed: set[str] = set()
        body = {k: v for k, v in self.body.items() if k not in ("stream", "stream_options")}

        def replacement(slot: int) -> Candidate | None:
            if self.client_error is not None:  # the request itself was refused: no other member would take it
                return None
            if deadline - self.loop.time() < _MIN_LEFT_S:
                self.notes.append(f"slot {slot}: dropped, no time left for a replacement")
                return None
            others = {p for s, p in busy.items() if s != slot}
            # A provider whose member just failed is probably struggling: try every other provider first.
            for avoid_failed in (True, False):
                for c in pool:
                    if avoid_failed and c.provider.id in failed:
                        continue
                    if not (self.panel.distinct_providers and c.provider.id in others):
                        pool.remove(c)
                        self.notes.append(f"slot {slot}: replaced by {c.target}")
                        return c
            self.notes.append(f"slot {slot}: dropped, no admissible replacement left")
            return None

        async def run_slot(slot: int, cand: Candidate) -> None:
            def start(c: Candidate) -> UpstreamAttempt:
                busy[slot] = c.provider.id
                return self.st.attempt(c, body, stream=False, deadline=deadline)

            options = LoopOptions(
                max_attempts=1 + len(pool) + len(chosen),  # bounded by the pool, not by dataplane.max_attempts
                deadline=deadline,
                replacement=lambda: replacement(slot),
                usable=lambda opened: bool(answer_text(opened.response).strip()),
            )
            report = _MemberReport(self, slot, deadline, busy, failed)
            try:
                answer = await first_answer([cand], start, report, options)
            except Exhausted as exc:
                if exc.client_error is not None:
                    self.client_error = self.client_error or exc.client_error
                return
            opened = answer.opened
            answer.attempt.close(reuse=True)  # the whole body was read
            assert opened.response is not None
            self.record(
                "member",
                answer.cand,
                opened.classification,
                opened.latency_s,
                slot=slot,
                usage=opened.response.get("usage"),
                ttft=opened.ttft_s,
                headroom=opened.headroom.ratio if opened.headroom else None,
            )
            self.answers[slot] = MemberAnswer(slot, answer.cand, answer_text(opened.response), opened.response)

        async with asyncio.TaskGroup() as tg:  # a bug in one slot cancels the others instead of orphaning them
            for i, c in enumerate(chosen, 1):
                tg.create_task(run_slot(i, c))

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
                "ref": synth_ref(self.panel),
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
        st.outcomes.request(route, self.stream, outcome, latency)
        by_target: dict[str, tuple[Call, int, int, float]] = {}
        for c in self.calls:
            if c.tokens_in or c.tokens_out:
                _, tin, tout, cost = by_target.get(c.target, (c, 0, 0, 0.0))
                by_target[c.target] = (c, tin + c.tokens_in, tout + c.tokens_out, cost + c.cost_usd)
        for target, (_, tin, tout, cost) in by_target.items():
            st.outcomes.usage(route, target, tin, tout, cost)
        if st.decisions is not None:
            u = self.usage()
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
                )
            )


def synth_ref(panel: PanelConfig) -> str | None:
    """The synthesizer: as configured, else the judge, else the first panel source."""
    return panel.synthesizer or panel.judge or (panel.from_[0] if panel.from_ else None)


class _StageReport:
    """A failed judge or synthesizer attempt: one call in the panel's trail, observed and counted."""

    __slots__ = ("_run", "_stage")

    def __init__(self, run: PanelRun, stage: str) -> None:
        self._run, self._stage = run, stage

    def failed(self, cand: Candidate, opened: Opened) -> None:
        headroom = opened.headroom.ratio if opened.headroom else None
        c = opened.classification
        self._run.record(self._stage, cand, c, opened.latency_s, ttft=opened.ttft_s, headroom=headroom)

    def failing_over(self, error_class: ErrorClass) -> None:
        pass  # a panel stage's failovers show in its trail; the failover metric counts client requests' moves


class _MemberReport:
    """A member attempt that gave no usable answer: one call in the trail; observed unless our own member deadline
    cut it before the provider's first-byte timeout (a tight panel deadline must not open healthy breakers)."""

    __slots__ = ("_run", "_slot", "_deadline", "_busy", "_failed")

    def __init__(self, run: PanelRun, slot: int, deadline: float, busy: dict[int, str], failed: set[str]) -> None:
        self._run, self._slot, self._deadline, self._busy, self._failed = run, slot, deadline, busy, failed

    def failed(self, cand: Candidate, opened: Opened) -> None:
        run = self._run
        self._failed.add(cand.provider.id)
        self._busy.pop(self._slot, None)
        c = opened.classification
        headroom = opened.headroom.ratio if opened.headroom else None
        if opened.ok:  # answered, with no text: observed as the success it was, logged as "empty"
            usage = (opened.response or {}).get("usage")
            run.record(
                "member", cand, c, opened.latency_s, slot=self._slot, usage=usage, outcome="empty",
                ttft=opened.ttft_s, headroom=headroom,
            )  # fmt: skip
            return
        cut = (
            c.error_class is ErrorClass.TIMEOUT
            and run.loop.time() >= self._deadline - 0.01
            and (opened.latency_s is None or opened.latency_s < run.st.timeouts.first_byte)
        )
        call = run.record(
            "member", cand, c, opened.latency_s, slot=self._slot, outcome="deadline" if cut else None,
            observe=not cut, ttft=opened.ttft_s, headroom=headroom,
        )  # fmt: skip
        if cut:
            call.latency_s = call.latency_s if call.latency_s is not None else run.panel.member_deadline
            call.detail = f"no answer within the member deadline ({run.panel.member_deadline:g}s)"

    def failing_over(self, error_class: ErrorClass) -> None:
        pass  # a member's replacements show in the trail; the failover metric counts client requests' moves
