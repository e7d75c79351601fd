"""Target choice for one data-plane request: the ordered candidates to try, and why the others were skipped.

The heavy part (route → admissible candidates with provider config, prices and context windows, spill
order, skip reasons) is computed once per published table version and reused by every request; a request
only applies the half-open share and its own preferences. The table is read once per request, without locks.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from controlplane.config import Config, HedgingConfig, ProviderConfig
from controlplane.domain import State
from controlplane.reasons import stated
from controlplane.table import Table, TableEntry
from dataplane.preferences import NO_PREFERENCES, Preferences

__all__ = ["Candidate", "Plan", "Selector"]

# States the data plane never sends live traffic to (only the breaker's own trials reach them).
_BLOCKED = frozenset({State.OPEN, State.WITHDRAWN, State.DRAINED})


@dataclass(frozen=True, slots=True)
class Candidate:
    """One target the request may be sent to, with what the hot path needs precomputed."""

    target: str  # provider/model
    provider: ProviderConfig
    model: str  # the provider's model name
    adapter: str
    state: State = State.CLOSED
    context_window: int | None = None
    price_in: float = 0.0  # USD per million tokens
    price_out: float = 0.0
    headroom: float | None = None
    half_open_share: float = 0.0
    ttft_p95_s: float | None = None
    latency_p95_s: float | None = None


@dataclass(slots=True)
class Plan:
    """The candidates for one request in the order to try them, plus the skipped ones with reasons."""

    name: str  # route name, or the explicit target key
    candidates: list[Candidate]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (target, reason)
    table_version: int = 0
    explicit: bool = False
    hedging: HedgingConfig | None = None


@dataclass(frozen=True, slots=True)
class _RouteIndex:
    candidates: tuple[Candidate, ...]
    skipped: tuple[tuple[str, str], ...]
    has_half_open: bool
    hedging: HedgingConfig | None


class Selector:
    """Plans requests against the current table; caches per-route work per (table, config) pair."""

    def __init__(self, config: Config, rand: Callable[[], float] = random.random) -> None:
        self._config = config
        self._rand = rand
        self._table: Table | None = None
        self._routes: dict[str, _RouteIndex] = {}
        self._targets = config.target_keys()

    @property
    def config(self) -> Config:
        return self._config

    def reconfigure(self, config: Config) -> None:
        """A new config (reload): drop everything computed from the old one."""
        self._config, self._table, self._routes = config, None, {}
        self._targets = config.target_keys()

    def known(self, name: str) -> bool:
        return self._config.route(name) is not None or name in self._targets

    def models(self) -> list[str]:
        return [r.name for r in self._config.routes]

    def plan(self, table: Table, name: str, prefs: Preferences = NO_PREFERENCES) -> Plan | None:
        """Candidates for `name` (a route or `provider/model`); None when the name is unknown."""
        if table is not self._table:
            self._table, self._routes = table, {}
        index = self._routes.get(name)
        if index is None:
            built = self._build(table, name)
            if built is None:
                return None
            index = self._routes[name] = built
        cands = list(index.candidates)
        skipped = list(index.skipped)
        if index.has_half_open:
            cands = self._half_open_share(cands, skipped)
        if prefs.filters:
            cands = _apply_preferences(cands, skipped, prefs)
        return Plan(name, cands, skipped, table.version, explicit="/" in name, hedging=index.hedging)

    # -- per table version ------------------------------------------------------------------------
    def _candidate(self, target: str, entry: TableEntry | None) -> Candidate | None:
        provider_id, _, model = target.partition("/")
        provider = self._config.provider(provider_id)
        mc = provider.model(model) if provider else None
        if provider is None or mc is None:
            return None
        return Candidate(
            target=target,
            provider=provider,
            model=model,
            adapter=provider.adapter,
            state=entry.state if entry else State.CLOSED,
            context_window=mc.context_window
            if mc.context_window is not None
            else (entry.context_window if entry else None),
            price_in=mc.price.input,
            price_out=mc.price.output,
            headroom=entry.headroom if entry else None,
            half_open_share=entry.half_open_share if entry else 0.0,
            ttft_p95_s=entry.ttft_p95_s if entry else None,
            latency_p95_s=entry.latency_p95_s if entry else None,
        )

    def _build(self, table: Table, name: str) -> _RouteIndex | None:
        route = self._config.route(name)
        if route is None:
            if name not in self._targets:
                return None
            return self._build_explicit(table, name)
        ranking = table.routes.get(name)
        cands: list[Candidate] = []
        skipped: list[tuple[str, str]] = []
        if ranking is None:
            # No ranking published for this route yet (fresh start): configured order, nothing known to be bad.
            for t in route.targets:
                c = self._candidate(t, table.targets.get(t))
                if c is not None and c.state not in _BLOCKED:
                    cands.append(c)
                elif c is not None:
                    skipped.append((t, str(c.state)))
        else:
            for e in ranking.entries:
                c = self._candidate(e.target, e)
                if c is None:
                    skipped.append((e.target, "not in the current config"))
                elif e.admissible:
                    cands.append(c)
                else:
                    skipped.append((e.target, e.excluded_by or stated(e.state, e.reason)))
        # Spill: a primary about to run out of rate-limit headroom yields to the next target (it stays as a fallback).
        if len(cands) >= 2 and cands[0].headroom is not None and cands[0].headroom < route.spill_headroom:
            skipped.append(
                (
                    cands[0].target,
                    f"spill: headroom {cands[0].headroom:.2f} < {route.spill_headroom:.2f}, moved behind the next",
                )
            )
            cands[0], cands[1] = cands[1], cands[0]
        hedging = route.hedging if route.hedging.enabled else None
        return _RouteIndex(tuple(cands), tuple(skipped), any(c.state is State.HALF_OPEN for c in cands), hedging)

    def _build_explicit(self, table: Table, name: str) -> _RouteIndex:
        entry = table.targets.get(name)
        c = self._candidate(name, entry)
        assert c is not None  # name is a configured target
        if entry is not None and (entry.state in _BLOCKED or (not entry.admissible and entry.excluded_by is None)):
            return _RouteIndex((), ((name, stated(entry.state, entry.reason)),), False, None)
        return _RouteIndex((c,), (), c.state is State.HALF_OPEN, None)

    # -- per request ------------------------------------------------------------------------------
    def _half_open_share(self, cands: list[Candidate], skipped: list[tuple[str, str]]) -> list[Candidate]:
        """A half_open target takes its trial share of requests first (the ranker puts it after the closed ones,
        where it would never be tried while they answer); outside its share it is only a last resort. One trial
        per request: a second half_open target drawn for the same request waits behind the rest."""
        trial: Candidate | None = None
        rest: list[Candidate] = []
        back: list[Candidate] = []
        for c in cands:
            if c.state is not State.HALF_OPEN:
                rest.append(c)
            elif trial is None and self._rand() < c.half_open_share:
                trial = c
            else:
                back.append(c)
                skipped.append((c.target, f"half_open: outside its {c.half_open_share:.0%} trial share, last resort"))
        return ([trial] if trial is not None else []) + rest + back


def _apply_preferences(cands: list[Candidate], skipped: list[tuple[str, str]], prefs: Preferences) -> list[Candidate]:
    kept: list[Candidate] = []
    for c in cands:
        if c.provider.jurisdiction in prefs.deny_jurisdictions:
            skipped.append((c.target, f"request: deny_jurisdictions {c.provider.jurisdiction}"))
        elif prefs.require_zero_retention and not c.provider.zero_retention:
            skipped.append((c.target, "request: require_zero_retention"))
        elif prefs.max_price is not None and c.price_out > prefs.max_price:
            skipped.append((c.target, f"request: max_price {prefs.max_price:g} < {c.price_out:g}"))
        else:
            kept.append(c)
    if prefs.order:
        rank = {name: i for i, name in enumerate(prefs.order)}

        def position(c: Candidate) -> int:
            return min(rank.get(c.target, len(rank)), rank.get(c.provider.id, len(rank)))

        listed = sorted((c for c in kept if position(c) < len(rank)), key=position)  # stable: ties keep table order
        rest = [c for c in kept if position(c) >= len(rank)]
        if not prefs.allow_fallbacks:
            skipped.extend((c.target, "request: not in order and allow_fallbacks is false") for c in rest)
            return listed
        return listed + rest
    if not prefs.allow_fallbacks and len(kept) > 1:
        skipped.extend((c.target, "request: allow_fallbacks is false") for c in kept[1:])
        return kept[:1]
    return kept
