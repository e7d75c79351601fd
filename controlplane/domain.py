"""Domain vocabulary shared by every part: error classes, states, target references, observations.

See ARCHITECTURE.md for the meaning of each term. Values here are immutable; they flow one way:
observations → breaker → ranker → table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TypedDict, Unpack

__all__ = [
    "ErrorClass",
    "State",
    "Source",
    "Scope",
    "TargetRef",
    "Headroom",
    "Classification",
    "Observation",
    "FAILURE_CLASSES",
    "WITHDRAW_CLASSES",
    "Measurements",
    "ObservationFields",
    "ObservationChanges",
    "FAILOVER_CLASSES",
]


class ErrorClass(StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"
    CONNECT = "connect"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    AUTH = "auth"
    REGION_BLOCKED = "region_blocked"
    MODEL_GONE = "model_gone"
    CLIENT_ERROR = "client_error"
    BAD_RESPONSE = "bad_response"


class State(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"
    WITHDRAWN = "withdrawn"
    DRAINED = "drained"


class Source(StrEnum):
    PROBE = "probe"
    LIVE = "live"


class Scope(StrEnum):
    """How far a signal reaches (provider-semantics.md §6)."""

    TARGET = "target"  # this model at this provider
    CREDENTIAL = "credential"  # every target on the same provider credential
    EGRESS = "egress"  # every target of that provider reached from this egress region


# Classes that count as a failure in the breaker window.
FAILURE_CLASSES: frozenset[ErrorClass] = frozenset(
    {
        ErrorClass.TIMEOUT,
        ErrorClass.CONNECT,
        ErrorClass.SERVER_ERROR,
        ErrorClass.BAD_RESPONSE,
        ErrorClass.OVERLOADED,
        ErrorClass.RATE_LIMITED,
    }
)
# Classes that withdraw a target at once (with the scope carried by the observation).
WITHDRAW_CLASSES: frozenset[ErrorClass] = frozenset(
    {ErrorClass.REGION_BLOCKED, ErrorClass.MODEL_GONE, ErrorClass.AUTH, ErrorClass.QUOTA_EXHAUSTED}
)
# Classes after which the data plane tries the next target within the same request.
FAILOVER_CLASSES: frozenset[ErrorClass] = frozenset(
    {
        ErrorClass.CONNECT,
        ErrorClass.TIMEOUT,
        ErrorClass.OVERLOADED,
        ErrorClass.RATE_LIMITED,
        ErrorClass.QUOTA_EXHAUSTED,
        ErrorClass.SERVER_ERROR,
        ErrorClass.REGION_BLOCKED,
        ErrorClass.MODEL_GONE,
        ErrorClass.AUTH,
        ErrorClass.BAD_RESPONSE,
    }
)


@dataclass(frozen=True, slots=True, order=True)
class TargetRef:
    """One model at one provider; written `provider/model` (the model part may itself contain `/`)."""

    provider: str
    model: str

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"

    @classmethod
    def parse(cls, text: str) -> TargetRef:
        provider, sep, model = text.partition("/")
        if not sep or not provider or not model:
            raise ValueError(f"target must look like 'provider/model', got {text!r}")
        return cls(provider, model)

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class Headroom:
    """Capacity headroom read from rate-limit headers: `ratio` = min over dimensions of remaining/limit."""

    ratio: float  # 0.0 (nothing left) .. 1.0 (all left)
    dimension: str | None = None  # the binding dimension: requests, tokens, input_tokens, output_tokens
    reset_after_s: float | None = None  # seconds until the binding dimension resets, when known
    remaining_tokens: float | None = None
    remaining_requests: float | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    """What an adapter concluded about one upstream answer: the error class and how far it reaches."""

    error_class: ErrorClass
    scope: Scope = Scope.TARGET
    status: int | None = None
    code: str | None = None  # the machine marker that decided it, e.g. "unsupported_country_region_territory"
    retry_after_s: float | None = None  # from retry-after-ms / retry-after / RetryInfo; never shortens a hold
    should_retry: bool | None = None  # x-should-retry, when the provider said so
    context_exceeded: bool = False  # a client_error that a larger-context target could answer
    detail: str = ""  # short, secret-free, for people

    @property
    def ok(self) -> bool:
        return self.error_class is ErrorClass.OK


class Measurements(TypedDict, total=False):
    """What a call measured, by keyword (Observation.from_classification takes these beside the classification)."""

    latency_s: float | None
    ttft_s: float | None
    tokens_per_s: float | None
    headroom: float | None
    started_at: datetime | None
    extra: dict[str, object]


class ObservationFields(Measurements, total=False):
    """Every optional field of an Observation, by keyword (Observation.success / failure)."""

    status: int | None
    retry_after_s: float | None
    scope: Scope
    code: str | None
    detail: str


class ObservationChanges(ObservationFields, total=False):
    """Any field of an Observation, by keyword (Observation.with_)."""

    target: str
    at: datetime
    source: Source
    kind: str
    error_class: ErrorClass


@dataclass(frozen=True, slots=True)
class Observation:
    """One outcome about one target, from a probe or from live traffic."""

    target: str  # TargetRef.key
    at: datetime  # wall time (UTC)
    source: Source
    kind: str  # probe kind ("catalogue", "completion", "status_page", ...) or "live"
    error_class: ErrorClass
    latency_s: float | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    status: int | None = None
    headroom: float | None = None
    retry_after_s: float | None = None
    scope: Scope = Scope.TARGET
    code: str | None = None
    detail: str = ""
    # When the call began (wall, UTC); None: unknown, then `at - latency_s` when the latency is known. The breaker
    # uses it to tell a call that began before the target's half_open period from a trial of that period.
    started_at: datetime | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def ok(self) -> bool:
        return self.error_class is ErrorClass.OK

    @classmethod
    def success(
        cls, target: str, *, kind: str, at: datetime, source: Source = Source.PROBE, **fields: Unpack[ObservationFields]
    ) -> Observation:
        return cls(target=target, at=at, source=source, kind=kind, error_class=ErrorClass.OK, **fields)

    @classmethod
    def failure(
        cls,
        target: str,
        error_class: ErrorClass,
        *,
        kind: str,
        at: datetime,
        source: Source = Source.PROBE,
        **fields: Unpack[ObservationFields],
    ) -> Observation:
        return cls(target=target, at=at, source=source, kind=kind, error_class=error_class, **fields)

    @classmethod
    def from_classification(
        cls,
        target: str,
        c: Classification,
        *,
        kind: str,
        at: datetime,
        source: Source = Source.PROBE,
        **fields: Unpack[Measurements],
    ) -> Observation:
        return cls(
            target=target,
            at=at,
            source=source,
            kind=kind,
            error_class=c.error_class,
            status=c.status,
            retry_after_s=c.retry_after_s,
            scope=c.scope,
            code=c.code,
            detail=c.detail,
            **fields,
        )

    def with_(self, **changes: Unpack[ObservationChanges]) -> Observation:
        return replace(self, **changes)
