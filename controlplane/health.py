"""The health model: the whole pure pipeline, observations → breakers → ranker → versioned table + events.

No I/O: time comes from the injected Clock, results come back as an `Outcome` value (transitions, events
and, only when an order or a state changed, a new Table). The caller stores and publishes them.

Reranking is immediate after any state change or a new rate-limit/overload hold; score-only drift (latency,
error rate) is reranked at most every `rerank_interval` seconds and on every `tick()`, which keeps ingest
fast (see bench/ingest.py). A new table version appears only when an order or a state changes.

Longer than most modules (~550 lines) because it is the one place where the order of the pipeline's steps
(window → breaker → holds → ranking → table) is written down; its parts (breaker.py, moves.py, window.py,
ranker.py, reasons.py, severity.py) live in their own modules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from controlplane.breaker import Breaker
from controlplane.clock import Clock
from controlplane.config import Config, ModelConfig, ProviderConfig
from controlplane.domain import WITHDRAW_CLASSES, Observation, Scope, State
from controlplane.events import Event
from controlplane.moves import Drain, Transition
from controlplane.ranker import TargetStanding, entry_for, rank_route, score
from controlplane.reasons import outscored_reason, state_reason
from controlplane.table import CurrentFigures, RouteRanking, Table, TableEntry
from probes import applies
from probes.catalogue import SEES_REGION_BLOCKS

__all__ = ["Outcome", "HealthModel", "SNAPSHOT_FORMAT"]

SNAPSHOT_FORMAT = 1
_TIME_KEYS = ("since", "open_until", "closed_since", "next_recheck", "last_recheck", "hold_until")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one call to the health model changed. `table` is set only when a new version was made."""

    transitions: list[Transition] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    table: Table | None = None
    rechecks: list[tuple[str, str]] = field(default_factory=list)  # (target, "ok" | error class): metrics only


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _parse_iso(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


class HealthModel:
    """Owns one Breaker per configured target and the ranking state (primaries, hysteresis, versions)."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        *,
        snapshot: dict[str, Any] | None = None,
        last_table: Table | None = None,
        rerank_interval: float = 1.0,
    ) -> None:
        self._clock = clock
        self.rerank_interval = rerank_interval
        self.unknown_observations = 0  # observations for targets not in the config (dropped, counted)
        self._observing = False  # True once an observation was recorded (a follower's view never records one)
        self._breakers: dict[str, Breaker] = {}
        self._primaries: dict[str, str | None] = {}
        self._primary_since: dict[str, float] = {}  # monotonic time each route's primary took its place
        self._orders: dict[str, tuple[str, ...]] = {}
        self._exhausted: set[str] = set()
        self._version = 0
        self._sig: object = None
        now = clock.monotonic()
        self._last_rank = now
        self._apply_config(config, now)
        if snapshot:
            self._restore(snapshot, now)
        if last_table is not None:
            self._version = max(self._version, last_table.version)
            self._table = last_table
            self._sig = _signature(last_table.routes, last_table.targets, last_table.config_hash)
            for name, r in last_table.routes.items():
                self._orders.setdefault(name, tuple(e.target for e in r.entries if e.admissible))
                self._primaries.setdefault(name, r.primary.target if r.primary else None)
        first = self._rerank(now, [], announce=False)
        if first is not None:
            self._table = first
        elif last_table is not None:  # nothing changed while we were down: keep serving the same version
            self._table = last_table

    # -- config ----------------------------------------------------------------------------------
    def _apply_config(self, config: Config, now: float) -> None:
        self._cfg = config
        self._targets: dict[str, tuple[ProviderConfig, ModelConfig]] = {
            f"{p.id}/{m.name}": (p, m) for p in config.providers for m in p.models
        }
        self._by_provider: dict[str, list[str]] = {
            p.id: [f"{p.id}/{m.name}" for m in p.models] for p in config.providers
        }
        for t in list(self._breakers):
            if t not in self._targets:
                del self._breakers[t]
        for t, (p, _m) in self._targets.items():
            b = self._breakers.get(t)
            if b is None:
                b = self._breakers[t] = Breaker(t, config.breaker, now)
            else:
                b.set_config(config.breaker, now)
                b.recheck_now(now)
            b.probe_kinds = _probe_kinds(config, p)
            b.catalogue_sees_region = p.adapter in SEES_REGION_BLOCKS
            b.refuted_spreads &= frozenset(self._by_provider[p.id])  # a removed sibling spreads nothing
        names = {r.name for r in config.routes}
        for d in (self._primaries, self._orders):
            for name in [n for n in d if n not in names]:
                del d[name]
        self._exhausted &= names

    def set_config(self, config: Config) -> Outcome:
        """Reload: unchanged targets keep their breaker, new ones start closed, removed ones are dropped;
        withdrawn targets are rechecked at once."""
        now = self._clock.monotonic()
        self._apply_config(config, now)
        events: list[Event] = []
        table = self._rerank(now, events)
        return Outcome([], events, table)

    @property
    def config(self) -> Config:
        return self._cfg

    # -- reading ---------------------------------------------------------------------------------
    @property
    def table(self) -> Table:
        return self._table

    def states(self) -> dict[str, State]:
        return {t: b.state for t, b in self._breakers.items()}

    def should_probe(self, target: str, kind: str) -> bool:
        """Withdrawn targets are probed only when the recheck is due; drained ones are still probed."""
        b = self._breakers.get(target)
        if b is None:
            return False
        return kind == "status_page" or b.should_probe(self._clock.monotonic(), kind)

    def due_rechecks(self) -> list[tuple[str, frozenset[str]]]:
        """Withdrawn targets whose recheck is due, each with the probe kinds that may make it."""
        now = self._clock.monotonic()
        return [(t, b.recheck_kinds()) for t, b in self._breakers.items() if b.recheck_due(now)]

    def figures_now(self) -> dict[str, CurrentFigures]:
        """Every target's window figures as of now (cached per window change, so cheap to ask per request).

        Empty until this model has recorded an observation: a control replica's follower view (restored from
        a snapshot, windows not persisted) knows no figures, and readers then show the published ones."""
        if not self._observing:
            return {}
        now = self._clock.monotonic()
        return {
            t: CurrentFigures(b.window.figures(now), b.headroom(now) if b.admits() else None)
            for t, b in self._breakers.items()
        }

    def target_detail(self, target: str) -> dict[str, Any]:
        """Everything the status API shows about one target (JSON-able, secret-free)."""
        b = self._breakers.get(target)
        if b is None:
            raise KeyError(f"unknown target {target!r}")
        now = self._clock.monotonic()
        snap = b.stats(now)
        d = b.drain
        return {
            "target": target,
            "state": str(b.state),
            "detector_state": str(b.detector_state),
            "since": _iso(self._wall(b.since, now)),
            "reason": self._reason(b, now),
            "reason_code": b.reason,
            "evidence": b.evidence.to_dict(),
            "admissible": b.admits(),
            "mode": self._cfg.breaker.mode,
            "open_until": _iso(self._wall(b.open_until, now)) if b.open_until is not None else None,
            "next_recheck": _iso(self._wall(b.next_recheck, now)) if b.next_recheck is not None else None,
            "last_recheck": (
                {"at": _iso(self._wall(b.last_recheck, now)), "result": b.last_recheck_result}
                if b.last_recheck is not None
                else None
            ),
            "signal_kinds": sorted(b.signal) if b.detector_state in (State.OPEN, State.WITHDRAWN) else [],
            "probe_trials": b.probe_trials,
            "refuted_spreads": sorted(b.refuted_spreads),  # siblings whose fanned-out block is not spread here
            "headroom": b.headroom(now) if b.admits() else None,  # no capacity claim for a target not served
            "trials": {"used": b.trials, "allowed": self._cfg.breaker.half_open_trials, "successes": b.trial_successes},
            "window": {
                "window_s": snap.window_s,
                "calls": snap.calls,
                "failures": snap.failures,
                "slow_calls": snap.slow_calls,
                "failure_rate": snap.failure_rate,
                "slow_call_rate": snap.slow_call_rate,
                "consecutive_failures": snap.consecutive_failures,
                "latency_p50_s": snap.latency_p50_s,
                "latency_p95_s": snap.latency_p95_s,
                "ttft_p50_s": snap.ttft_p50_s,
                "ttft_p95_s": snap.ttft_p95_s,
                "verdict": str(snap.verdict),
                "judged_group": snap.group,
                "calls_by_source": dict(snap.signal_calls),
                "figures": asdict(snap.figures),
            },
            "override": _drain_dict(d) if d else None,
        }

    # -- observations ----------------------------------------------------------------------------
    def ingest(self, obs: Observation) -> Outcome:
        return self.ingest_many((obs,))

    def ingest_many(self, obs_list: Iterable[Observation]) -> Outcome:
        now = self._clock.monotonic()
        transitions: list[Transition] = []
        rechecks: list[tuple[str, str]] = []
        urgent = False
        for obs in obs_list:
            b = self._breakers.get(obs.target)
            if b is None:
                self.unknown_observations += 1
                continue
            self._observing = True
            if obs.scope != Scope.TARGET and obs.error_class in WITHDRAW_CLASSES:
                for t in self._by_provider.get(b.target.partition("/")[0], ()):
                    sib = self._breakers[t]
                    if t != obs.target and obs.target in sib.refuted_spreads:
                        # The sibling's own recheck showed this block does not reach it: spreading it again
                        # would withdraw it once more and cost an event and a webhook per recheck for as long
                        # as the block stands. It lasts until the source leaves withdrawn (below) or the
                        # sibling's own calls see a block (Breaker.record).
                        continue
                    o = obs if t == obs.target else obs.with_(target=t, extra={**obs.extra, "via": obs.target})
                    urgent |= self._record(sib, o, now, transitions, rechecks)
            else:
                urgent |= self._record(b, obs, now, transitions, rechecks)
        if not urgent and now - self._last_rank < self.rerank_interval:
            return Outcome(transitions, rechecks=rechecks) if transitions or rechecks else Outcome()
        events = self._transition_events(transitions)
        table = self._rerank(now, events)
        return Outcome(transitions, events, table, rechecks)

    def _record(
        self, b: Breaker, obs: Observation, now: float, out: list[Transition], rechecks: list[tuple[str, str]]
    ) -> bool:
        """Feed one breaker; True when the table must be redone now (a move, or a new cool-down hold)."""
        cool_before = b.hold_until > now
        last_recheck = b.last_recheck
        moves = b.record(obs, now)
        if b.last_recheck != last_recheck and b.last_recheck_result is not None:
            rechecks.append((b.target, b.last_recheck_result))
        if moves:
            out.extend(moves)
            if any(m.old is State.WITHDRAWN for m in moves):  # its block lifted: a new one may spread again
                for t in self._by_provider.get(b.target.partition("/")[0], ()):
                    self._breakers[t].refuted_spreads -= {b.target}
            return True
        return not cool_before and b.hold_until > now

    # -- time ------------------------------------------------------------------------------------
    def tick(self) -> Outcome:
        """Time-driven work: open → half_open when due, drains past their expiry; always reranks."""
        now = self._clock.monotonic()
        wall = self._clock.wall()
        transitions: list[Transition] = []
        events: list[Event] = []
        for t, b in self._breakers.items():
            transitions.extend(b.poll(now))
            d = b.drain
            if d is not None and d.until is not None and d.until <= wall:
                transitions.extend(b.clear_drain(now, "expiry", f"drain expired at {_iso(d.until)}"))
                events.append(self._override_event("expired", t, None, d.reason, d.until, "expiry"))
        events[:0] = self._transition_events(transitions)
        table = self._rerank(now, events)
        return Outcome(transitions, events, table)

    # -- operator --------------------------------------------------------------------------------
    def _resolve(self, target: str | None, provider: str | None) -> list[str]:
        if (target is None) == (provider is None):
            raise ValueError("give exactly one of target= or provider=")
        if target is not None:
            if target not in self._breakers:
                raise ValueError(f"unknown target {target!r}; known: {', '.join(sorted(self._breakers))}")
            return [target]
        assert provider is not None
        if provider not in self._by_provider:
            raise ValueError(f"unknown provider {provider!r}; known: {', '.join(sorted(self._by_provider))}")
        return list(self._by_provider[provider])

    def drain(
        self, *, target: str | None = None, provider: str | None = None, reason: str, until: datetime | None, actor: str
    ) -> Outcome:
        """Operator drain of one target or a whole provider, with a reason and an optional expiry (wall)."""
        names = self._resolve(target, provider)
        wall = self._clock.wall()
        if until is not None:
            if until.tzinfo is None:
                raise ValueError("until must be timezone-aware (UTC)")
            if until <= wall:
                raise ValueError(f"until {_iso(until)} is not in the future (now {_iso(wall)})")
        if not actor:
            raise ValueError("actor is required (who drained it)")
        now = self._clock.monotonic()
        transitions = [
            t
            for n in names
            if (t := self._breakers[n].set_drain(Drain(reason, actor, wall, until, provider), now)) is not None
        ]
        events = self._transition_events(transitions)
        events.append(self._override_event("drain", target, provider, reason, until, actor))
        return Outcome(transitions, events, self._rerank(now, events))

    def undrain(
        self, *, target: str | None = None, provider: str | None = None, actor: str, reason: str = ""
    ) -> Outcome:
        """Lift a drain; each target returns to its detector's state (withdrawn stays withdrawn)."""
        names = self._resolve(target, provider)
        now = self._clock.monotonic()
        transitions: list[Transition] = []
        for n in names:
            transitions.extend(self._breakers[n].clear_drain(now, actor, reason))
        if not transitions:
            return Outcome()
        events = self._transition_events(transitions)
        events.append(self._override_event("undrain", target, provider, reason, None, actor))
        return Outcome(transitions, events, self._rerank(now, events))

    def _override_event(
        self, action: str, target: str | None, provider: str | None, reason: str, until: datetime | None, actor: str
    ) -> Event:
        return Event(
            "override.changed",
            self._clock.wall(),
            target or provider or "",
            {
                "action": action,
                "target": target,
                "provider": provider,
                "reason": reason,
                "until": _iso(until) if until else None,
                "actor": actor,
            },
            self._cfg.hash,
        )

    # -- events ----------------------------------------------------------------------------------
    def _transition_events(self, transitions: list[Transition]) -> list[Event]:
        wall = self._clock.wall()
        h = self._cfg.hash
        out: list[Event] = []
        for tr in transitions:
            if tr.shadow:
                continue  # a move under an operator drain: counted by the caller, never announced
            data = {
                "from": str(tr.old),
                "to": str(tr.new),
                "reason": tr.reason,
                "evidence": tr.evidence.to_dict(),
                "mode": self._cfg.breaker.mode,
            }
            out.append(Event("target.state_changed", wall, tr.target, data, h))
            if tr.new is State.WITHDRAWN:
                out.append(Event("target.withdrawn", wall, tr.target, data, h))
            elif tr.new is State.CLOSED and tr.old is State.HALF_OPEN:
                out.append(Event("target.recovered", wall, tr.target, data, h))
        return out

    # -- ranking ---------------------------------------------------------------------------------
    def _wall(self, mono: float | None, now: float) -> datetime:
        return self._clock.wall() + timedelta(seconds=(mono if mono is not None else now) - now)

    def _reason(self, b: Breaker, now: float) -> str:
        st = b.state
        return state_reason(
            st,
            reason=b.reason,
            evidence=b.evidence,
            since=self._wall(b.since, now),
            retry_at=self._wall(b.open_until, now) if st is State.OPEN and b.open_until is not None else None,
            latency_p50_s=b.window.percentiles(now)[0],
            error_rate=b.window.error_rate(now),
            drain=b.drain,
            trials=(b.trials, b.cfg.half_open_trials, b.trial_successes),
            metrics_only=b.metrics_only,
        )

    def _candidate(self, t: str, b: Breaker, now: float) -> TargetStanding:
        p, m = self._targets[t]
        f = b.window.figures(now)  # serving figures only: never a listing's round trip
        return TargetStanding(
            target=t,
            provider=p,
            model=m,
            state=b.state,
            admissible=b.admits(),
            reason=self._reason(b, now),
            latency_p50_s=f.latency_p50_s,
            latency_p95_s=f.latency_p95_s,
            ttft_p50_s=f.ttft_p50_s,
            ttft_p95_s=f.ttft_p95_s,
            error_rate=f.error_rate,
            headroom=b.headroom(now),
            retry_in_s=(b.open_until - now) if b.open_until is not None else None,
            figures=f,
        )

    def _rerank(self, now: float, events: list[Event], *, announce: bool = True) -> Table | None:
        """Rank every route; add route events to `events`; return a new Table only when order/state changed."""
        self._last_rank = now
        cfg = self._cfg
        cands = {t: self._candidate(t, b, now) for t, b in self._breakers.items()}
        routes: dict[str, RouteRanking] = {
            r.name: rank_route(r, cands, cfg.ranking, self._orders.get(r.name, ()), self._dwelling(r.name, now))
            for r in cfg.routes
        }
        targets: dict[str, TableEntry] = {
            t: entry_for(
                c,
                admissible=c.admissible,
                rank=None,
                score_=score(c, cfg.ranking) if c.admissible else None,
                reason=c.reason,
                half_open_share=cfg.ranking.half_open_share,
            )
            for t, c in cands.items()
        }
        wall = self._clock.wall()
        for name, rr in routes.items():
            self._orders[name] = tuple(e.target for e in rr.entries if e.admissible)
            new = rr.primary.target if rr.primary else None
            old = self._primaries.get(name)
            if announce and name in self._primaries and new != old:
                why = self._why_primary_changed(rr, old, new)
                scores = {e.target: e.score for e in rr.entries if e.target in (old, new)}
                events.append(
                    Event(
                        "route.primary_changed",
                        wall,
                        name,
                        {"from": old, "to": new, "reason": why, "panic": rr.panic, "scores": scores},
                        cfg.hash,
                    )
                )
            if name in self._primaries and new != old:  # a change (the first primary after start is not one)
                if self._outscored(rr, old):
                    self._primary_since[name] = now
                else:
                    # The old primary left by its state (a failover): no dwell for the stand-in, so the old one
                    # takes its place back as soon as it serves again and ranks ahead. Its breaker already damps a
                    # flapping target (trials, growing open durations); a dwell would only delay a return.
                    self._primary_since.pop(name, None)
            self._primaries[name] = new
            if new is None and name not in self._exhausted:
                self._exhausted.add(name)
                if announce:
                    reasons = {e.target: e.reason for e in rr.entries}
                    events.append(
                        Event(
                            "route.exhausted",
                            wall,
                            name,
                            {"from": old, "to": None, "reason": "no admissible target", "targets": reasons},
                            cfg.hash,
                        )
                    )
            elif new is not None and name in self._exhausted:
                self._exhausted.discard(name)
                if announce:
                    events.append(
                        Event(
                            "route.recovered",
                            wall,
                            name,
                            {"from": None, "to": new, "reason": rr.primary.reason if rr.primary else ""},
                            cfg.hash,
                        )
                    )
        sig = _signature(routes, targets, cfg.hash)
        if sig == self._sig:
            return None
        self._sig = sig
        self._version += 1
        self._table = Table(
            version=self._version, published_at=wall, routes=routes, targets=targets, config_hash=cfg.hash
        )
        return self._table

    def _dwelling(self, route: str, now: float) -> str | None:
        """The route's primary while it is inside its minimum dwell (it then keeps first place), else None."""
        since = self._primary_since.get(route)
        if since is None or now - since >= self._cfg.ranking.min_dwell:
            return None
        return self._primaries.get(route)

    @staticmethod
    def _outscored(rr: RouteRanking, old: str | None) -> bool:
        """The route's old primary still serves: it lost first place by score, not by its state."""
        was = next((e for e in rr.entries if e.target == old), None) if old is not None else None
        return was is not None and was.admissible and was.state in (State.CLOSED, State.HALF_OPEN)

    @staticmethod
    def _why_primary_changed(rr: RouteRanking, old: str | None, new: str | None) -> str:
        if old is None:
            return "route recovered"
        was = next((e for e in rr.entries if e.target == old), None)
        if was is None:
            return "removed from route"
        if HealthModel._outscored(rr, old):
            return outscored_reason(new)  # still serving, just clearly worse now (beaten by more than the margin)
        return was.reason  # out by its state (also when panic still admits it least-bad): say why

    # -- persistence -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """JSON-able state to resume from; every deadline is a wall time (monotonic does not survive)."""
        now = self._clock.monotonic()
        wall = self._clock.wall()
        targets: dict[str, Any] = {}
        for t, b in self._breakers.items():
            d = b.to_dict(now)
            for k in _TIME_KEYS:
                if d.get(k) is not None:
                    d[k] = _iso(wall + timedelta(seconds=d[k]))
            d["drain"] = _drain_dict(b.drain) if b.drain else None
            targets[t] = d
        return {
            "format": SNAPSHOT_FORMAT,
            "taken_at": _iso(wall),
            "config_hash": self._cfg.hash,
            "table_version": self._version,
            "primaries": dict(self._primaries),
            "orders": {k: list(v) for k, v in self._orders.items()},
            "exhausted": sorted(self._exhausted),
            "targets": targets,
        }

    def _restore(self, snap: dict[str, Any], now: float) -> None:
        if snap.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"snapshot format {snap.get('format')!r} is not supported (expected {SNAPSHOT_FORMAT})")
        wall = self._clock.wall()
        self._version = int(snap.get("table_version", 0))
        routes = {r.name for r in self._cfg.routes}
        self._primaries.update({k: v for k, v in snap.get("primaries", {}).items() if k in routes})
        self._orders.update({k: tuple(v) for k, v in snap.get("orders", {}).items() if k in routes})
        self._exhausted = set(snap.get("exhausted", ())) & routes
        for t, raw in snap.get("targets", {}).items():
            if t not in self._breakers:
                continue  # removed from the config while we were down
            d = dict(raw)
            for k in _TIME_KEYS:
                if d.get(k) is not None:
                    d[k] = (_parse_iso(d[k]) - wall).total_seconds()
            b = Breaker.from_dict(t, self._cfg.breaker, d, now)
            dr = d.get("drain")
            if dr:
                b.drain = Drain(
                    dr["reason"],
                    dr["actor"],
                    _parse_iso(dr["at"]),
                    _parse_iso(dr["until"]) if dr.get("until") else None,
                    dr.get("provider"),
                )
            self._breakers[t] = b


def _probe_kinds(config: Config, provider: ProviderConfig) -> frozenset[str]:
    """The probe kinds that run against this provider's targets (what a recheck can be made with)."""
    return frozenset(k for k, kc in config.probes.kinds.items() if kc.enabled and applies(k, provider))


def _drain_dict(d: Drain) -> dict[str, Any]:
    return {
        "reason": d.reason,
        "actor": d.actor,
        "at": _iso(d.at),
        "until": _iso(d.until) if d.until else None,
        "provider": d.provider,
    }


def _signature(routes: dict[str, RouteRanking], targets: dict[str, TableEntry], config_hash: str) -> object:
    """What makes a new version: every order, state, admissibility, exclusion and panic flag (not scores)."""
    return (
        config_hash,
        tuple(
            (n, r.panic, tuple((e.target, e.state, e.admissible, e.excluded_by) for e in r.entries))
            for n, r in sorted(routes.items())
        ),
        tuple((t, e.state, e.admissible) for t, e in sorted(targets.items())),
    )
