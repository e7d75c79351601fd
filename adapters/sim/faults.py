"""Active faults: which catalogue rows hold for which provider (and optionally model), for the next N calls,
a duration on the injected clock, or with a probability; and which of them fire on one request."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.sim.catalogue import MODIFIERS, Behaviour, FaultSpec
from controlplane.clock import Clock

__all__ = ["FaultRule", "Fired", "FaultBook"]

# Behaviours that never fire on a request: they shape the catalogue or the status page while active.
_PASSIVE = frozenset({Behaviour.CATALOGUE, Behaviour.STATUS, Behaviour.REFUSED})
# Behaviours that only make sense on a stream (a plain request skips them and leaves their count alone).
_STREAM_ONLY = frozenset({Behaviour.MID_ERROR})


@dataclass(eq=False)
class FaultRule:
    """One active fault on one provider."""

    id: str
    provider: str
    spec: FaultSpec
    model: str | None
    count: int | None  # calls left; None = unlimited
    expires_at: float | None  # monotonic; None = until cleared
    probability: float | None
    params: dict[str, Any]
    created_at: float
    hits: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)  # set when cleared/expired: hung requests go on

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, self.spec.defaults.get(name, default))

    def matches(self, model: str | None) -> bool:
        return self.model is None or model is None or self.model == model

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "fault": self.spec.id,
            "behaviour": self.spec.behaviour.value,
            "model": self.model,
            "count_left": self.count,
            "expires_in_s": None if self.expires_at is None else round(max(0.0, self.expires_at - now), 3),
            "probability": self.probability,
            "params": self.params,
            "hits": self.hits,
        }


@dataclass
class Fired:
    """What fires on one request: at most one terminal fault, plus any modifiers."""

    terminal: FaultRule | None = None
    modifiers: list[FaultRule] = field(default_factory=list)

    def modifier(self, behaviour: Behaviour) -> list[FaultRule]:
        return [m for m in self.modifiers if m.spec.behaviour is behaviour]

    @property
    def rules(self) -> list[FaultRule]:
        return ([self.terminal] if self.terminal else []) + self.modifiers


class FaultBook:
    """All active faults of one simulator. `on_change(provider)` runs when a provider's refused state may change."""

    def __init__(self, clock: Clock, *, seed: int = 0, on_change: Callable[[str], None] | None = None) -> None:
        self._clock = clock
        self._rng = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._spent: list[FaultRule] = []  # count used up; kept so clear() still releases what they hung
        self._ids = itertools.count(1)
        self._on_change = on_change or (lambda provider: None)
        self.hits: Counter[tuple[str, str]] = Counter()  # (provider, fault id) → times fired

    def add(
        self,
        provider: str,
        spec: FaultSpec,
        *,
        model: str | None = None,
        count: int | None = None,
        duration: float | None = None,
        probability: float | None = None,
        params: Mapping[str, Any] | None = None,
        start: float | None = None,
    ) -> FaultRule:
        if count is not None and count < 1:
            raise ValueError(f"count must be a positive integer, got {count!r}")
        if duration is not None and duration <= 0:
            raise ValueError(f"duration must be positive, got {duration!r}")
        if probability is not None and not 0 < probability <= 1:
            raise ValueError(f"probability must be in (0, 1], got {probability!r}")
        if spec.behaviour is Behaviour.REFUSED and (count is not None or probability is not None or model is not None):
            raise ValueError(
                "refused closes the whole listener: give it a duration or clear it (no count, probability or model)"
            )
        now = self._clock.monotonic() if start is None else start
        rule = FaultRule(
            id=f"f{next(self._ids)}",
            provider=provider,
            spec=spec,
            model=model,
            count=count,
            expires_at=None if duration is None else now + duration,
            probability=probability,
            params=dict(params or {}),
            created_at=now,
        )
        self._rules.append(rule)
        self._on_change(provider)
        return rule

    def rules(self, provider: str | None = None) -> list[FaultRule]:
        self.expire()
        return [r for r in self._rules if provider is None or r.provider == provider]

    def remove(self, rule_id: str) -> bool:
        rule = next((r for r in self._rules if r.id == rule_id), None)
        if rule is None:
            return False
        self._drop([rule])
        return True

    def clear(self, provider: str | None = None, model: str | None = None) -> int:
        """Remove faults of a provider (and model; None = all); returns how many were removed."""

        def hit(r: FaultRule) -> bool:
            return (provider is None or r.provider == provider) and (model is None or r.model == model)

        gone = [r for r in self._rules if hit(r)]
        self._drop(gone)
        for r in [r for r in self._spent if hit(r)]:
            self._spent.remove(r)
            r.released.set()
        return len(gone)

    def expire(self) -> list[FaultRule]:
        now = self._clock.monotonic()
        gone = [r for r in self._rules if r.expires_at is not None and now >= r.expires_at]
        self._drop(gone)
        return gone

    def _drop(self, rules: list[FaultRule]) -> None:
        for r in rules:
            if r in self._rules:
                self._rules.remove(r)
            r.released.set()
        for provider in {r.provider for r in rules}:
            self._on_change(provider)

    def refusing(self, provider: str) -> bool:
        return any(r.spec.behaviour is Behaviour.REFUSED for r in self.rules(provider))

    def passive(self, provider: str, behaviour: Behaviour, model: str | None = None) -> list[FaultRule]:
        """Active rules of a behaviour that shapes state rather than a request (catalogue, status page)."""
        return [
            r
            for r in self.rules(provider)
            if r.spec.behaviour is behaviour and (model is None or r.model in (None, model))
        ]

    def dropped_models(self, provider: str) -> tuple[set[str], bool]:
        """Models off the catalogue right now, and whether every model is (a provider-wide drop)."""
        names: set[str] = set()
        everything = False
        for r in self.rules(provider):
            if r.spec.drops_model or r.spec.behaviour is Behaviour.CATALOGUE:
                if r.model is None:
                    everything = True
                else:
                    names.add(r.model)
        return names, everything

    def fire(
        self,
        provider: str,
        model: str | None,
        *,
        inference: bool,
        stream: bool,
        accept: Callable[[FaultSpec], bool] | None = None,
    ) -> Fired:
        """Pick what acts on this request, newest fault first; consumes counts and rolls probabilities.

        On a catalogue/health/count-tokens request (`inference=False`) only faults marked for all endpoints
        act (auth, region, transport), plus a gone model's 404 when the request names that model.
        `accept` narrows further (faults it rejects are neither fired nor consumed)."""
        fired = Fired()
        for rule in reversed(self.rules(provider)):
            spec = rule.spec
            if spec.behaviour in _PASSIVE or not rule.matches(model) or (accept is not None and not accept(spec)):
                continue
            if not inference and not (spec.all_endpoints or (spec.drops_model and model is not None)):
                continue
            if not inference and rule.model is not None and model is None:
                continue  # a model-scoped fault does not block provider-wide endpoints
            if not stream and spec.behaviour in _STREAM_ONLY:
                continue
            is_modifier = spec.behaviour in MODIFIERS
            if not is_modifier and fired.terminal is not None:
                continue
            if rule.probability is not None and self._rng.random() >= rule.probability:
                continue
            rule.hits += 1
            self.hits[(provider, spec.id)] += 1
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    # Spent, not released: a request it hung stays hung until cleared or stopped.
                    self._rules.remove(rule)
                    self._spent = [*self._spent[-63:], rule]
            if is_modifier:
                fired.modifiers.append(rule)
            else:
                fired.terminal = rule
        return fired
