"""A breaker's moves as values: which moves are legal, and what each move records.

The breaker (controlplane/breaker.py) makes the moves; the health model stores, publishes and counts them;
reasons.py words them for people. Legal moves are data (resilience4j): any other move raises IllegalTransition.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from controlplane.domain import Observation, State
from controlplane.errors import IllegalTransition
from controlplane.window import WindowSnapshot

__all__ = ["ALLOWED", "OPERATOR_ALLOWED", "Evidence", "Transition", "Drain", "check_move"]

_C, _H, _O, _W, _D = State.CLOSED, State.HALF_OPEN, State.OPEN, State.WITHDRAWN, State.DRAINED

ALLOWED: frozenset[tuple[State, State]] = frozenset(
    {
        (_C, _O),
        (_C, _W),
        (_O, _H),
        (_O, _W),
        (_H, _C),
        (_H, _O),
        (_H, _W),
        (_W, _H),
    }
)
"""Moves the breaker makes by itself. Anything else raises IllegalTransition."""

OPERATOR_ALLOWED: frozenset[tuple[State, State]] = frozenset(
    {(s, _D) for s in (_C, _H, _O, _W)} | {(_D, s) for s in (_C, _H, _O, _W)}
)
"""Moves only an operator makes: into drained, and back out to whatever the detector says now."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a move happened: window counts, the deciding signal and, for fan-out, where it came from."""

    verdict: str | None = None
    calls: int = 0
    failures: int = 0
    slow_calls: int = 0
    failure_rate: float = 0.0
    slow_call_rate: float = 0.0
    consecutive_failures: int = 0
    window_s: float = 0.0
    error_class: str | None = None
    status: int | None = None
    code: str | None = None
    detail: str = ""
    top_failures: tuple[tuple[str, int | None, int], ...] = ()
    via: str | None = None  # the target whose signal was fanned out to this one (credential/egress scope)
    open_for_s: float | None = None
    would: bool = False  # metrics_only: what the breaker would have done; traffic is not blocked
    actor: str | None = None  # operator moves
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["top_failures"] = [list(t) for t in self.top_failures]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evidence:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["top_failures"] = tuple(tuple(t) for t in known.get("top_failures", ()))
        return cls(**known)

    @classmethod
    def of_window(cls, snap: WindowSnapshot, obs: Observation | None, **extra: Any) -> Evidence:
        return cls(
            verdict=str(snap.verdict),
            calls=snap.calls,
            failures=snap.failures,
            slow_calls=snap.slow_calls,
            failure_rate=round(snap.failure_rate, 4),
            slow_call_rate=round(snap.slow_call_rate, 4),
            consecutive_failures=snap.consecutive_failures,
            window_s=snap.window_s,
            error_class=str(obs.error_class) if obs else None,
            status=obs.status if obs else None,
            code=obs.code if obs else None,
            detail=obs.detail[:200] if obs else "",
            top_failures=snap.top_failures,
            **extra,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """One move of one target's breaker, with its reason and evidence. `at` is monotonic seconds.

    `shadow` marks a detector move made underneath an operator drain: counted, never enforced."""

    target: str
    old: State
    new: State
    reason: str  # "failure_rate", "consecutive_failures", "slow_call_rate", "model_gone", "drained", ...
    evidence: Evidence
    at: float = 0.0
    shadow: bool = False


@dataclass(frozen=True, slots=True)
class Drain:
    """An operator drain; wall times because it is shown to people and survives restarts."""

    reason: str
    actor: str
    at: datetime
    until: datetime | None = None
    provider: str | None = None  # set when the whole provider was drained


def check_move(old: State, new: State, allowed: frozenset[tuple[State, State]]) -> None:
    """Raise IllegalTransition unless (old, new) is one of `allowed`."""
    if (old, new) not in allowed:
        raise IllegalTransition(old, new)
