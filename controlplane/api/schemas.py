"""Pydantic models of the status API's requests and responses; the OpenAPI document is generated from them.

Request models forbid unknown fields so a typo is a 422 naming the field, not a silent no-op. Response
models describe what handlers send (handlers build plain dicts on the hot path; the schemathesis test
checks every response against these schemas).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controlplane.events import EVENT_TYPES

__all__ = [
    "ErrorDetail",
    "ErrorResponse",
    "StatusOk",
    "Readiness",
    "TableEntryModel",
    "RouteModel",
    "TableModel",
    "RoutesResponse",
    "TargetsResponse",
    "ObservationModel",
    "TargetDetail",
    "ProviderStatus",
    "ProvidersResponse",
    "EventModel",
    "EventsPage",
    "UptimeItem",
    "ProviderUptime",
    "UptimeResponse",
    "DrainRequest",
    "UndrainRequest",
    "OverrideResponse",
    "ReloadResponse",
    "WebhookCreate",
    "WebhookEndpointModel",
    "WebhookCreated",
    "WebhooksResponse",
    "DeliveryModel",
    "DeliveriesResponse",
    "WebhookTestResponse",
    "RedeliverResponse",
    "StateName",
    "EVENT_FILTERS",
]

StateName = Literal["closed", "half_open", "open", "withdrawn", "drained"]
# Exact event types plus `family.*` wildcards accepted in webhook subscriptions.
EVENT_FILTERS: tuple[str, ...] = (*EVENT_TYPES, *sorted({t.split(".")[0] + ".*" for t in EVENT_TYPES}))


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    status: int
    code: str = Field(description="machine-readable cause, e.g. invalid_field, missing_token, not_found")
    message: str
    field: str | None = Field(default=None, description="the offending field or parameter, when there is one")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class StatusOk(BaseModel):
    status: Literal["ok"]
    version: str  # the running Turnout (`turnout --version`)


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, bool]
    table_version: int | None = None


class TableEntryModel(BaseModel):
    target: str
    provider: str
    model: str
    state: StateName
    admissible: bool
    rank: int | None
    score: float | None
    reason: str
    excluded_by: str | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    error_rate: float | None = None
    headroom: float | None = None
    context_window: int | None = None
    adapter: str = "openai"
    half_open_share: float = 0.0
    latency_source: Literal["live", "completion"] | None = Field(
        default=None, description="where latency_p50_s/p95 come from: live traffic, else completion probes"
    )
    latency_samples: int = 0
    ttft_source: Literal["live", "completion"] | None = None
    ttft_samples: int = 0
    error_source: Literal["serving", "cheap"] | None = Field(
        default=None, description="calls error_rate is over: serving (live + completion probes), else cheap probes"
    )
    error_samples: int = 0


class RouteModel(BaseModel):
    route: str
    panic: bool
    primary: str | None
    entries: list[TableEntryModel]


class TableModel(BaseModel):
    version: int
    published_at: str
    config_hash: str
    routes: dict[str, RouteModel]
    targets: dict[str, TableEntryModel]


class RoutesResponse(BaseModel):
    version: int
    routes: list[RouteModel]


class TargetsResponse(BaseModel):
    version: int
    targets: list[TableEntryModel]


class ObservationModel(BaseModel):
    target: str
    at: str
    source: str
    kind: str
    error_class: str
    latency_s: float | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    status: int | None = None
    headroom: float | None = None
    retry_after_s: float | None = None
    scope: str
    code: str | None = None
    detail: str = ""


class TargetDetail(BaseModel):
    target: str
    provider: str
    model: str
    entry: TableEntryModel | None = Field(description="the target's row in the published table")
    health: dict[str, Any] = Field(description="breaker detail: state, since, reason, window stats")
    latest_observations: dict[str, ObservationModel] = Field(description="latest observation per probe kind")
    routes: list[str]


class ProviderStatus(BaseModel):
    id: str
    adapter: str
    region: str
    jurisdiction: str
    status: Literal["operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage"]
    states: dict[str, int] = Field(description="how many of its targets are in each state")
    targets: list[TableEntryModel]
    status_page: dict[str, Any] | None = Field(description="the latest status-page probe, when configured")


class ProvidersResponse(BaseModel):
    version: int
    providers: list[ProviderStatus]


class EventModel(BaseModel):
    id: int | None
    type: str
    at: str
    subject: str
    data: dict[str, Any]
    config_hash: str


class EventsPage(BaseModel):
    events: list[EventModel]
    next_after: int | None = Field(description="pass as ?after= for the next page; null when the page is empty")


class UptimeItem(BaseModel):
    target: str
    provider: str
    window_s: float
    total: int
    ok: int
    failed: int
    by_class: dict[str, int]
    uptime_pct: float | None
    error_budget_used: float | None
    slo: float
    latency_mean_s: float | None = None


class ProviderUptime(BaseModel):
    provider: str
    ok: int
    failed: int
    uptime_pct: float | None
    error_budget_used: float | None


class UptimeResponse(BaseModel):
    window: str
    window_s: float
    targets: list[UptimeItem]
    providers: list[ProviderUptime]


class DrainRequest(_Request):
    reason: str = Field(default="operator drain", min_length=1, max_length=500)
    until: datetime | None = Field(
        default=None, description="RFC 3339 time at which the drain lapses; null = until undrained"
    )

    @field_validator("until")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("until must carry a timezone, e.g. 2026-01-01T12:00:00Z")
        return v


class UndrainRequest(_Request):
    reason: str = Field(default="operator undrain", min_length=1, max_length=500)


class OverrideResponse(BaseModel):
    action: Literal["drain", "undrain"]
    target: str | None
    provider: str | None
    actor: str
    table_version: int


class ReloadResponse(BaseModel):
    config_hash: str
    table_version: int


class WebhookCreate(_Request):
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="http(s) URL; private addresses need config.webhooks.allow_private_networks",
    )
    events: list[str] = Field(default=[], max_length=64, description="event types (or `family.*`); empty = all")
    description: str = Field(default="", max_length=500)

    @field_validator("events")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for i, t in enumerate(v):
            if t not in EVENT_FILTERS:
                raise ValueError(f"events[{i}]: unknown event type {t!r}; known: {', '.join(EVENT_FILTERS)}")
        return list(dict.fromkeys(v))


class WebhookEndpointModel(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    created_at: str


class WebhookCreated(WebhookEndpointModel):
    secret: str = Field(description="whsec_… signing secret; shown only in this response")


class WebhooksResponse(BaseModel):
    webhooks: list[WebhookEndpointModel]


class DeliveryModel(BaseModel):
    id: str = Field(description="the webhook-id header value; identical on every attempt")
    endpoint_id: str
    event_id: int | None
    event_type: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    last_status_code: int | None
    created_at: str
    delivered_at: str | None


class DeliveriesResponse(BaseModel):
    deliveries: list[DeliveryModel]


class WebhookTestResponse(BaseModel):
    event_id: int
    delivery_id: str | None


class RedeliverResponse(BaseModel):
    delivery: DeliveryModel
