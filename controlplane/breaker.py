"""The per-target breaker: a pure state machine over observations (no I/O, no timers; `now` is passed in).

States and legal moves (ARCHITECTURE.md, "Breaker semantics"; the moves as values are in moves.py); every knob is
in docs/breaker.md:

    closed ──(failure rate | consecutive failures | slow-call rate)──► open
    open ──(open duration elapsed, decided lazily)──► half_open
    half_open ──(half_open_successes successes)──► closed
    half_open ──(one failure, or trials used up)──► open (longer: exponential, capped)
        (a trial is a call begun inside the half_open period, and not a listing of a target opened on calls)
    open ──(first level only: a probe of the opening signal succeeds, after a short minimum)──► half_open
    closed | open | half_open ──(region_blocked, model_gone, auth, quota_exhausted)──► withdrawn
    withdrawn ──(a due recheck of the withdrawing signal succeeds)──► half_open (trials by probes only)
    any ◄──(operator only)──► drained

A signal is seen by some probe kinds only (`signal_kinds`): a model that left the catalogue only by the
catalogue, a region block, auth failure or hang seen on a call only by calls (completion, count_tokens). Leaving
open early or withdrawn at all takes a success of a kind that sees the signal that put the target there; a
failed recheck is silent (no move, no new evidence) and only pushes the next one out (doubling from
`withdrawn_recheck_first` to `withdrawn_recheck`).

Detection is kept apart from enforcement (Envoy): while drained, the detector keeps running underneath and
its moves come back flagged `shadow`; in `metrics_only` mode every move happens and is reported, but the
caller keeps the target admissible (the evidence says `would`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from controlplane.config import BreakerConfig
from controlplane.domain import WITHDRAW_CLASSES, ErrorClass, Observation, State
from controlplane.moves import ALLOWED, OPERATOR_ALLOWED, Drain, Evidence, Transition, check_move
from controlplane.window import SlidingWindow, Verdict, WindowSnapshot, signal_of

__all__ = ["PRESSURE_CLASSES", "COUNTED_FAILURES", "NEUTRAL_KINDS", "CALL_KINDS", "signal_kinds", "Breaker"]

_C, _H, _O, _W, _D = State.CLOSED, State.HALF_OPEN, State.OPEN, State.WITHDRAWN, State.DRAINED

# Rate limiting and overload first only lower headroom ("cool"); they count as failures only when sustained.
PRESSURE_CLASSES: frozenset[ErrorClass] = frozenset({ErrorClass.RATE_LIMITED, ErrorClass.OVERLOADED})
# Failures that always count in the window.
COUNTED_FAILURES: frozenset[ErrorClass] = frozenset(
    {ErrorClass.TIMEOUT, ErrorClass.CONNECT, ErrorClass.SERVER_ERROR, ErrorClass.BAD_RESPONSE}
)
# Probe kinds whose outcome never moves the breaker (provider-semantics.md §4: status pages de-rank only).
NEUTRAL_KINDS: frozenset[str] = frozenset({"status_page"})
# Probe kinds that make a call to the model itself: they see what calls see (region blocks, auth, hangs).
CALL_KINDS: frozenset[str] = frozenset({"completion", "count_tokens"})


def signal_kinds(kind: str) -> frozenset[str]:
    """The probe kinds that can see a signal first observed by `kind` (live traffic or a probe kind).

    The catalogue sees what only a listing shows (a model gone from it); everything seen on a call is seen
    again only by a call: a healthy listing says nothing about a region block on completions."""
    return frozenset({"catalogue"}) if kind == "catalogue" else CALL_KINDS


# Azure answers DeploymentNotFound for a deployment created minutes ago, until it is live (provider-semantics.md
# §2.1): for this long after the target's config appeared or changed, that answer counts as a failure, not a
# withdrawal. The code is adapters/azure.py's marking (the openai adapter's azure flavor keeps withdrawing at once).
NEW_DEPLOYMENT_CODES: frozenset[str] = frozenset({"deployment_not_found"})
NEW_DEPLOYMENT_GRACE_S = 300.0

_NONE: tuple[Transition, ...] = ()


class Breaker:
    """One target's breaker. Feed it `record(obs, now)`; call `poll(now)` for time-driven moves."""

    def __init__(self, target: str, cfg: BreakerConfig, now: float) -> None:
        self.target = target
        self.cfg = cfg
        self._state = State.CLOSED  # the detector's state; `state` adds the operator drain on top
        self.since = now
        self.reason = "start"
        self.evidence = Evidence()
        self.window = self._new_window()
        self.openings = 0  # open level: each opening doubles the open duration (capped)
        self.open_until: float | None = None
        self.closed_since: float = now
        self.trials = 0
        self.trial_successes = 0
        self.next_recheck: float | None = None
        self.recheck_level = 0  # failed rechecks since the last close: each doubles the next delay (capped)
        self.last_recheck: float | None = None
        self.last_recheck_result: str | None = None  # "ok" or the error class of the last due recheck
        self.signal: frozenset[str] = frozenset()  # kinds that see what opened or withdrew the target
        self.probe_kinds: frozenset[str] = frozenset()  # kinds probing this target (set by the health model)
        self.probe_trials = False  # half_open after a recheck: trials are probes of the signal, not live traffic
        self.catalogue_sees_region = False  # its listing says per-model availability (Bedrock): set by the health model
        self.configured_at = now  # when this target's config appeared or last changed (the deployment grace)
        self.hold_until: float = -math.inf  # headroom is 0 until then (rate limit / overload cool-down)
        self.last_headroom: float | None = None
        self._rl_level = 0  # rate-limit backoff doublings without a retry-after
        self._last_pressure: float | None = None
        self.drain: Drain | None = None
        # Targets whose credential/egress fan-out this target's own recheck proved wrong (withdrawn via them, then
        # its own call succeeded): the health model does not spread their signal here again until they leave
        # withdrawn or this target sees a withdrawing signal on its own calls (see `_recheck`).
        self.refuted_spreads: frozenset[str] = frozenset()

    # -- reading ---------------------------------------------------------------------------------
    @property
    def state(self) -> State:
        """The effective state: drained while an operator drain holds, else the detector's state."""
        return _D if self.drain is not None else self._state

    @property
    def detector_state(self) -> State:
        return self._state

    @property
    def metrics_only(self) -> bool:
        return self.cfg.mode == "metrics_only"

    def admits(self) -> bool:
        """May traffic go to this target? The one place admissibility is decided (the ranker reads it).

        Drained: never. metrics_only: always (moves are reported, not enforced). Closed: yes; half_open: while
        trial slots remain, unless its trials are probes (after a recheck). Open and withdrawn: no; an open breaker whose duration has passed admits only after
        poll()/record() has moved it to half_open, so what the table shows and what traffic gets agree."""
        if self.drain is not None:
            return False
        if self.metrics_only:
            return True
        st = self._state
        if st is _C:
            return True
        if st is _H:
            return not self.probe_trials and self.trials < self.cfg.half_open_trials
        return False

    def should_probe(self, now: float, kind: str | None = None) -> bool:
        """Withdrawn targets are probed only when their recheck is due, and only by a kind that sees the signal
        that withdrew them (`kind` None: any kind); every other state is probed."""
        if self._state is _W:
            due = self.next_recheck is None or now >= self.next_recheck
            return due and (kind is None or self.sees_signal(kind))
        return True

    def sees_signal(self, kind: str, *, or_any: bool = True) -> bool:
        """Can a `kind` outcome say the signal that opened or withdrew this target is gone? When no kind probing
        this target sees it (e.g. completion probes off), `or_any` takes any probe kind rather than none: a
        withdrawn target has no timer to fall back on, an open one has its open duration."""
        if kind in NEUTRAL_KINDS or kind == "live":
            return False
        wanted = self.signal & self.probe_kinds if self.probe_kinds else self.signal
        return kind in wanted if wanted else or_any

    def recheck_kinds(self) -> frozenset[str]:
        """The probe kinds a recheck of this withdrawn target may be made with (what `should_probe` lets run)."""
        kinds = self.probe_kinds - NEUTRAL_KINDS
        return frozenset(k for k in kinds if self.sees_signal(k))

    def recheck_due(self, now: float) -> bool:
        return self._state is _W and (self.next_recheck is None or now >= self.next_recheck)

    def recheck_delay(self) -> float:
        """Seconds to the next recheck: `withdrawn_recheck_first` doubled per failed recheck, capped at
        `withdrawn_recheck` (a transient 403 is undone within minutes, a real directive costs a few calls a day)."""
        cap = self.cfg.withdrawn_recheck
        first = min(self.cfg.withdrawn_recheck_first, cap)
        return float(min(first * 2 ** min(self.recheck_level, 32), cap))

    def early_half_open_at(self) -> float | None:
        """While open at the first level (it was healthy before this failure): the earliest time a success of the
        opening signal may move it to half_open, `open_min_duration` after it opened; a retry-after hint is
        never cut short. None at higher levels: a target that failed its trials, or failed again before its level
        decayed, waits its whole (doubling) open duration, so a flapping target keeps the table still."""
        if self._state is not _O or self.open_until is None or self.openings > 1:
            return None
        return float(min(max(self.since + self.cfg.open_min_duration, self.hold_until), self.open_until))

    def headroom(self, now: float) -> float | None:
        """0 while cooling down after rate limiting / overload; else the last reading (None = unknown)."""
        if now < self.hold_until:
            return 0.0
        return self.last_headroom

    def stats(self, now: float) -> WindowSnapshot:
        return self.window.snapshot(now)

    # -- time ------------------------------------------------------------------------------------
    def poll(self, now: float) -> tuple[Transition, ...]:
        """Time-driven moves: open → half_open once the open duration (and any retry-after) has passed."""
        if self._state is _O and self.open_until is not None and now >= self.open_until:
            return (self._move(_H, "open_elapsed", Evidence(open_for_s=round(now - self.since, 3)), now),)
        return _NONE

    def recheck_now(self, now: float) -> None:
        """Config changed: a withdrawn target is rechecked at once (the fix may be in the new config)."""
        self.configured_at = now
        if self._state is _W:
            self.next_recheck = now

    def set_config(self, cfg: BreakerConfig, now: float) -> None:
        changed = cfg != self.cfg
        self.cfg = cfg
        if changed:  # new thresholds apply to a fresh window (the old counts were judged by old rules)
            self.window = self._new_window()

    # -- observations ----------------------------------------------------------------------------
    def record(self, obs: Observation, now: float) -> tuple[Transition, ...]:
        """Feed one observation; return the moves it caused (usually none)."""
        cls = obs.error_class
        if type(cls) is not ErrorClass:  # e.g. a plain string from a data replica's JSON report
            try:
                cls = ErrorClass(cls)
            except ValueError:
                return _NONE  # an unknown class says nothing we can act on
        if not _sane(obs.latency_s) or not _sane(obs.ttft_s):
            obs = replace(
                obs,
                latency_s=obs.latency_s if _sane(obs.latency_s) else None,
                ttft_s=obs.ttft_s if _sane(obs.ttft_s) else None,
            )
        if cls is ErrorClass.CLIENT_ERROR or obs.kind in NEUTRAL_KINDS:
            return _NONE  # the caller's mistake, or a status page: never counts against a target
        self._cool(obs, cls, now)
        if obs.headroom is not None and 0.0 <= obs.headroom <= 1.0:
            self.last_headroom = obs.headroom
        st = self._state
        if (
            cls is ErrorClass.MODEL_GONE
            and (obs.code or "").lower() in NEW_DEPLOYMENT_CODES
            and now - self.configured_at < NEW_DEPLOYMENT_GRACE_S
        ):
            cls = ErrorClass.SERVER_ERROR  # maybe not live yet: counted, failed over, not withdrawn
        if cls in WITHDRAW_CLASSES and _via(obs) is None:
            self.refuted_spreads = frozenset()  # its own call sees a block now: the old refutations are stale
        if st is _W:
            return self._recheck(obs, cls, now)
        if cls in WITHDRAW_CLASSES and not (cls is ErrorClass.QUOTA_EXHAUSTED and obs.retry_after_s is not None):
            # (a quota with a known reset, e.g. Gemini's per-day quota, only cools: §6 "cool(daily reset)")
            return self._withdraw(obs, now)
        out: tuple[Transition, ...] = _NONE
        if st is _O:
            out = self.poll(now)
            if not out:
                early = self.early_half_open_at()
                seen = self.sees_signal(obs.kind, or_any=False)
                if cls is ErrorClass.OK and seen and early is not None and now >= early:
                    # The evidence says it is back: trials now rather than at the end of the open duration.
                    return (self._move(_H, "probe_succeeded", self._ev(obs, now), now),)
                return _NONE  # open: other outcomes are not counted until the open duration is over
        if self._state is _H:
            return out + self._trial(obs, cls, now)
        return out + self._closed(obs, cls, now)

    def _recheck(self, obs: Observation, cls: ErrorClass, now: float) -> tuple[Transition, ...]:
        """An outcome while withdrawn. Only a due probe of a kind that sees the withdrawing signal is a recheck;
        anything else (a listing while completions are region-blocked, an outcome in flight at the withdrawal, a
        sibling's signal fanned out here) says nothing and changes nothing. A failed recheck is silent: no move,
        the evidence kept, the next one later.

        A successful recheck of a withdrawal fanned out from a sibling (evidence `via`) refutes that fan-out for
        this target: its own call of the withdrawing kind just worked, so the block does not reach this far (a
        per-model directive answered with an egress-wide code). Remembering it stops the cycle withdrawn →
        half_open → withdrawn (two events and webhooks per recheck) that the sibling's next observation of its
        own standing block would otherwise cause, for as long as that block stands."""
        due = self.next_recheck is None or now >= self.next_recheck
        if not due or not self.sees_signal(obs.kind) or _via(obs) is not None:
            return _NONE
        self.last_recheck = now
        self.last_recheck_result = "ok" if cls is ErrorClass.OK else str(cls)
        if cls is ErrorClass.OK:
            if self.evidence.via is not None:
                self.refuted_spreads |= {self.evidence.via}
            move = self._move(_H, "recheck_succeeded", self._ev(obs, now), now)
            self.probe_trials = not self.metrics_only
            return (move,)
        self.recheck_level += 1
        self.next_recheck = now + self.recheck_delay()
        return _NONE

    def _withdraw(self, obs: Observation, now: float) -> tuple[Transition, ...]:
        if self.probe_trials:  # the trials after a recheck failed on a withdrawing signal: back off further
            self.recheck_level += 1
        signal = signal_kinds(obs.kind)
        if self.catalogue_sees_region and obs.error_class is ErrorClass.REGION_BLOCKED:
            signal |= {"catalogue"}
        move = self._move(_W, str(obs.error_class), self._ev(obs, now), now)
        self.signal = signal
        self.next_recheck = now + self.recheck_delay()
        return (move,)

    def _closed(self, obs: Observation, cls: ErrorClass, now: float) -> tuple[Transition, ...]:
        win = self.window
        sig = signal_of(obs.source, obs.kind)  # figures and failure rates are kept apart per signal source
        if cls is ErrorClass.OK:
            win.add(now, failed=False, latency_s=obs.latency_s, ttft_s=obs.ttft_s, signal=sig)  # may be slow
        elif cls in PRESSURE_CLASSES:
            # Sustained = a second pressure signal within one window; a lone 429 only cools. Pressure never
            # extends or ends the consecutive-failure streak (a 429 says nothing about a 5xx run).
            sustained = self._last_pressure is not None and now - self._last_pressure <= self.cfg.window
            self._last_pressure = now
            win.add(now, failed=sustained, error_class=str(cls), status=obs.status, counts_in_streak=False, signal=sig)
        else:
            win.add(
                now,
                failed=cls in COUNTED_FAILURES,
                latency_s=obs.latency_s,
                ttft_s=obs.ttft_s,
                error_class=str(cls),
                status=obs.status,
                signal=sig,
            )
        verdict = win.verdict(now)
        if verdict in (Verdict.OK, Verdict.BELOW_MIN_CALLS):
            return _NONE
        return (self._open(str(verdict), obs, now),)

    def _trial(self, obs: Observation, cls: ErrorClass, now: float) -> tuple[Transition, ...]:
        if self.trials >= self.cfg.half_open_trials:
            return _NONE  # only the configured number of trial outcomes count
        if self.probe_trials and not self.sees_signal(obs.kind):
            return _NONE  # after a recheck only probes of the withdrawing signal are trials
        if not self._is_trial(obs, now):
            return _NONE
        self.trials += 1
        failed = cls is not ErrorClass.OK
        self.window.add(
            now,
            failed=failed,
            latency_s=obs.latency_s,
            ttft_s=obs.ttft_s,
            error_class=str(cls),
            status=obs.status,
            signal=signal_of(obs.source, obs.kind),
        )
        if cls is ErrorClass.OK:
            self.trial_successes += 1
            if self.trial_successes >= self.cfg.half_open_successes:
                return (self._move(_C, "trials_succeeded", self._ev(obs, now), now),)
            if self.trials >= self.cfg.half_open_trials:
                # The last trial succeeded but too few did (an earlier one met pressure): without this move the
                # breaker would admit nothing more and count nothing more, wedged in half_open for good.
                return (self._open("trials_exhausted", obs, now),)
            return _NONE
        if cls in PRESSURE_CLASSES:  # a trial spent without an answer either way
            if self.trials >= self.cfg.half_open_trials:
                return (self._open("trials_exhausted", obs, now),)
            return _NONE
        return (self._open("trial_failed", obs, now),)

    def _is_trial(self, obs: Observation, now: float) -> bool:
        """Is `obs` evidence about this half_open period? Two outcomes are not, and are ignored like outcomes
        beyond the trials (no trial spent, not in the window, no move either way):

        - a call that began before the period did (it was sent while the target was open, e.g. a probe in flight
          through a hang that is cut at its deadline just after the move): it says how the target was then.
          Its start is `now - age` (`_call_age`); an observation recorded later than it was made only looks
          fresher, so the rule can let a stale call count (as before), never drop a fresh one. Age unknown:
          a trial, as before.
        - a listing, for a target opened on calls (a hang or 5xx on completions): the catalogue cannot see that
          signal (`signal_kinds`), so neither its timeout nor its success says whether the calls are back."""
        age = _call_age(obs)
        if age is not None and now - age < self.since:
            return False
        return not (obs.kind == "catalogue" and self.signal and "catalogue" not in self.signal)

    def _open(self, reason: str, obs: Observation, now: float) -> Transition:
        """Open on `obs`'s evidence; what it was seen on decides which probes may end the open period early."""
        move = self._move(_O, reason, self._ev(obs, now), now)
        self.signal = signal_kinds(obs.kind)
        return move

    def _cool(self, obs: Observation, cls: ErrorClass, now: float) -> None:
        ra = obs.retry_after_s
        if ra is not None and not (math.isfinite(ra) and ra >= 0):
            ra = None  # a malformed hint is ignored, never trusted
        if cls is ErrorClass.RATE_LIMITED:
            if ra is None:
                ra = min(self.cfg.rate_limit_default_backoff * 2**self._rl_level, self.cfg.rate_limit_backoff_max)
                self._rl_level = min(self._rl_level + 1, 32)
            self.hold_until = max(self.hold_until, now + ra)
        elif cls is ErrorClass.OVERLOADED:
            self.hold_until = max(self.hold_until, now + max(self.cfg.overload_cooldown, ra or 0.0))
        elif ra is not None:
            self.hold_until = max(self.hold_until, now + ra)
        elif cls is ErrorClass.OK:
            self._rl_level = 0
        if ra is not None and self._state is _O and self.open_until is not None:
            self.open_until = max(self.open_until, now + ra)  # a retry-after extends, never shortens

    def _ev(self, obs: Observation, now: float) -> Evidence:
        return Evidence.of_window(self.window.snapshot(now), obs, via=_via(obs), would=self.metrics_only)

    # -- operator --------------------------------------------------------------------------------
    def set_drain(self, drain: Drain, now: float) -> Transition | None:
        """Drain (or update an existing drain's reason/expiry). Returns the move, None when already drained."""
        if self.drain is not None:
            self.drain = drain
            return None
        old = self._state
        check_move(old, _D, OPERATOR_ALLOWED)
        self.drain = drain
        return Transition(self.target, old, _D, "drained", Evidence(actor=drain.actor, note=drain.reason), now)

    def clear_drain(self, now: float, actor: str, reason: str = "") -> tuple[Transition, ...]:
        """Undrain: back to what the detector says now (a withdrawn target stays withdrawn)."""
        if self.drain is None:
            return _NONE
        self.drain = None
        lazy = self.poll(now)
        new = self._state
        check_move(_D, new, OPERATOR_ALLOWED)
        t = Transition(self.target, _D, new, "undrained", Evidence(actor=actor, note=reason), now)
        return (t,) + tuple(replace(x, shadow=True) for x in lazy)

    # -- moves -----------------------------------------------------------------------------------
    def _move(self, new: State, reason: str, evidence: Evidence, now: float) -> Transition:
        old = self._state
        check_move(old, new, ALLOWED)
        if new is _O:
            if old is _C:  # time spent healthy earns back open levels (Envoy decrements its multiplier)
                decay = int((now - self.closed_since) // max(self.cfg.open_duration_max, 1e-9))
                self.openings = max(0, self.openings - decay)
            self.openings += 1
            dur = min(self.cfg.open_duration * 2 ** (self.openings - 1), self.cfg.open_duration_max)
            self.open_until = max(now + dur, self.hold_until)
            evidence = replace(evidence, open_for_s=round(self.open_until - now, 3))
        elif new is _C:
            self.closed_since = now
            self.open_until = None
            self.recheck_level = 0
        elif new is _H:
            self.open_until = None
        if new is not _W:
            self.next_recheck = None
        self.probe_trials = False
        self.trials = self.trial_successes = 0
        self._state = new
        self.since = now
        self.reason = reason
        self.evidence = evidence
        self.window = self._new_window()  # each state starts with a fresh window: a reset cannot be forgotten
        return Transition(self.target, old, new, reason, evidence, now, shadow=self.drain is not None)

    def _new_window(self) -> SlidingWindow:
        c = self.cfg
        return SlidingWindow(
            c.window,
            min_calls=c.min_calls,
            failure_rate_threshold=c.failure_rate_threshold,
            slow_call_threshold=c.slow_call_threshold,
            slow_call_rate_threshold=c.slow_call_rate_threshold,
            consecutive_failures=c.consecutive_failures,
        )

    # -- persistence (monotonic times become offsets the caller turns into wall times) -----------
    def to_dict(self, now: float) -> dict[str, Any]:
        """State needed to resume, with every deadline as seconds relative to `now` (the caller stores
        wall times: monotonic readings do not survive a restart)."""

        def rel(t: float | None) -> float | None:
            return None if t is None or not math.isfinite(t) else t - now

        return {
            "state": str(self._state),
            "since": rel(self.since),
            "reason": self.reason,
            "evidence": self.evidence.to_dict(),
            "openings": self.openings,
            "open_until": rel(self.open_until),
            "closed_since": rel(self.closed_since),
            "trials": self.trials,
            "trial_successes": self.trial_successes,
            "next_recheck": rel(self.next_recheck),
            "recheck_level": self.recheck_level,
            "last_recheck": rel(self.last_recheck),
            "last_recheck_result": self.last_recheck_result,
            "signal": sorted(self.signal),
            "probe_trials": self.probe_trials,
            "hold_until": rel(self.hold_until),
            "last_headroom": self.last_headroom,
            "rl_level": self._rl_level,
            "refuted_spreads": sorted(self.refuted_spreads),
        }

    @classmethod
    def from_dict(cls, target: str, cfg: BreakerConfig, d: dict[str, Any], now: float) -> Breaker:
        """Inverse of to_dict; relative times are re-anchored on `now`. The window starts fresh."""

        def ab(x: Any) -> float | None:
            return None if x is None else now + float(x)

        b = cls(target, cfg, now)
        b._state = State(d["state"])
        if b._state is _D:  # drained lives in `drain`, never in the detector
            b._state = _C
        b.since = ab(d.get("since")) or now
        b.reason = str(d.get("reason", "restored"))
        b.evidence = Evidence.from_dict(d.get("evidence") or {})
        b.openings = int(d.get("openings", 0))
        b.open_until = ab(d.get("open_until"))
        if b._state is _O and b.open_until is None:
            b.open_until = now
        b.closed_since = ab(d.get("closed_since")) or now
        b.trials = int(d.get("trials", 0))
        b.trial_successes = int(d.get("trial_successes", 0))
        b.next_recheck = ab(d.get("next_recheck"))
        b.recheck_level = int(d.get("recheck_level", 0))
        b.last_recheck = ab(d.get("last_recheck"))
        lr = d.get("last_recheck_result")
        b.last_recheck_result = None if lr is None else str(lr)
        b.signal = frozenset(str(k) for k in d.get("signal", ()))
        b.probe_trials = bool(d.get("probe_trials", False)) and b._state is _H
        hold = ab(d.get("hold_until"))
        b.hold_until = -math.inf if hold is None else hold
        lh = d.get("last_headroom")
        b.last_headroom = None if lh is None else float(lh)
        b._rl_level = int(d.get("rl_level", 0))
        b.refuted_spreads = frozenset(str(t) for t in d.get("refuted_spreads", ()))
        return b


def _via(obs: Observation) -> str | None:
    """The sibling whose credential/egress signal the health model fanned out as `obs` (None: this target's own)."""
    via = obs.extra.get("via") if obs.extra else None
    return via if isinstance(via, str) else None


def _call_age(obs: Observation) -> float | None:
    """Seconds from the start of `obs`'s call to its outcome: `at - started_at`, else its latency; None unknown."""
    if obs.started_at is not None:
        age = (obs.at - obs.started_at).total_seconds()
        return age if _sane(age) else None
    return obs.latency_s  # already made sane by `record`


def _sane(x: float | None) -> bool:
    """A duration we can use: None (unknown) or finite and non-negative. NaN would poison percentiles."""
    return x is None or (math.isfinite(x) and x >= 0)
