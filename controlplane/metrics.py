"""Every Prometheus metric Turnout exposes, defined in one place (prefix `turnout_`, base units in names).

Labels stay bounded: provider, model, route, kind, error_class, state, reason (a fixed vocabulary),
outcome. Never request ids or free text. Each `Metrics` owns its registry, so tests get a fresh one.

Besides the catalogue, the `observe_*` functions reflect the pipeline's values (observations, transitions,
the published table, events) into the metrics, so every writer labels them the same way; `render` gives the
exposition text and `catalogue_markdown` the reference page (docs/metrics.md, kept in sync by a test).

Longer than most modules on purpose: the whole metric catalogue in one place is what makes labels consistent.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from controlplane.domain import ErrorClass, Observation, Source, State, TargetRef
from controlplane.version import __version__

if TYPE_CHECKING:
    from controlplane.events import Event
    from controlplane.table import Table, TableEntry

__all__ = [
    "Metrics",
    "LATENCY_BUCKETS",
    "CONTENT_TYPE",
    "DATAPLANE_OK_OUTCOMES",
    "MetricDoc",
    "observe_observation",
    "observe_probe",
    "observe_transition",
    "observe_recheck",
    "observe_table",
    "observe_event",
    "render",
    "catalogue",
    "catalogue_markdown",
]

# Text format 0.0.4: every Prometheus 2.x and 3.x scrapes it (3.x would refuse an unknown one without a fallback
# setting), and for our ASCII metric names it is byte-for-byte what the newer 1.0.0 format would carry.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# `turnout_dataplane_requests_total{outcome}` values that do not spend the error budget: a success, and the
# caller's own mistakes or departures. Any other outcome (exhausted, stream_error, …; see dataplane/proxy.py) counts as an
# error in the burn-rate alerts (dashboards/prometheus/alerts.yml), so an unforeseen outcome errs on alerting.
DATAPLANE_OK_OUTCOMES = ("ok", "client_error", "client_gone")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_T = ("provider", "model")


class Metrics:
    """All metric objects; attribute name = metric name without the `turnout_` prefix."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self._children: dict[tuple[Any, ...], Any] = {}
        self._observation_series: dict[tuple[Any, ...], _ObservationSeries] = {}  # observe_observation's children
        # -- probes ---------------------------------------------------------------------------
        self.probe_duration_seconds = Histogram(
            "turnout_probe_duration_seconds",
            "Probe duration by kind.",
            [*_T, "kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.probe_success = Gauge(
            "turnout_probe_success", "1 if the last probe of this kind succeeded.", [*_T, "kind"], registry=r
        )
        self.probe_outcomes_total = Counter(
            "turnout_probe_outcomes_total", "Probe outcomes by error class.", [*_T, "kind", "error_class"], registry=r
        )
        self.probes_skipped_total = Counter(
            "turnout_probes_skipped_total",
            "Probes not run (budget spent, withdrawn recheck not due).",
            [*_T, "kind", "reason"],
            registry=r,
        )
        self.probe_spend_usd_total = Counter(
            "turnout_probe_spend_usd_total", "Estimated spend of paid probes.", ["provider"], registry=r
        )
        self.scheduler_lag_seconds = Histogram(
            "turnout_scheduler_lag_seconds",
            "Delay between a probe's planned and actual start.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # -- target health -------------------------------------------------------------------
        self.ttft_seconds = Histogram(
            "turnout_ttft_seconds",
            "Time to first token of answered (ok) calls.",
            [*_T, "source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.latency_seconds = Histogram(
            "turnout_latency_seconds",
            "Upstream call latency of answered (ok) calls.",
            [*_T, "source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens_per_second = Gauge(
            "turnout_tokens_per_second", "Output tokens per second (last completion probe).", _T, registry=r
        )
        self.observations_total = Counter(
            "turnout_observations_total",
            "Observations by source and error class.",
            [*_T, "source", "error_class"],
            registry=r,
        )
        self.target_state = Gauge(
            "turnout_target_state", "1 for the target's current breaker state, else 0.", [*_T, "state"], registry=r
        )
        self.target_up = Gauge(
            "turnout_target_up", "1 if the target is admissible (closed or half_open).", _T, registry=r
        )
        self.capacity_headroom_ratio = Gauge(
            "turnout_capacity_headroom_ratio",
            "Remaining/limit of the binding rate-limit dimension (last reading).",
            _T,
            registry=r,
        )
        self.state_transitions_total = Counter(
            "turnout_state_transitions_total",
            "Breaker transitions.",
            [*_T, "from_state", "to_state", "reason"],
            registry=r,
        )
        self.withdrawn_rechecks_total = Counter(
            "turnout_withdrawn_rechecks_total",
            "Due rechecks of withdrawn targets by what they met (ok, or the error class): a failed one moves nothing.",
            [*_T, "error_class"],
            registry=r,
        )
        self.would_block_total = Counter(
            "turnout_breaker_would_block_total",
            "Transitions the breaker made while in metrics_only mode.",
            _T,
            registry=r,
        )
        # -- routes and table ----------------------------------------------------------------
        self.route_target_score = Gauge(
            "turnout_route_target_score", "Ranking score of a target in a route.", ["route", *_T], registry=r
        )
        self.route_target_rank = Gauge(
            "turnout_route_target_rank", "Rank (1 = primary; 0 = not admissible).", ["route", *_T], registry=r
        )
        self.route_admissible_targets = Gauge(
            "turnout_route_admissible_targets", "Admissible targets per route.", ["route"], registry=r
        )
        self.route_panic = Gauge(
            "turnout_route_panic", "1 while the route ranks least-bad (panic threshold).", ["route"], registry=r
        )
        self.route_severity = Gauge(
            "turnout_route_severity",
            "Route severity (0 operational, 1 maintenance, 2 degraded, 3 partial, 4 major = no admissible target).",
            ["route"],
            registry=r,
        )
        self.provider_severity = Gauge(
            "turnout_provider_severity",
            "Provider severity from its targets' states (same scale as turnout_route_severity).",
            ["provider"],
            registry=r,
        )
        self.table_version = Gauge("turnout_table_version", "Version of the published table.", registry=r)
        self.events_total = Counter("turnout_events_total", "Events emitted by type.", ["type"], registry=r)
        # -- data plane ----------------------------------------------------------------------
        self.dataplane_requests_total = Counter(
            "turnout_dataplane_requests_total",
            "Client requests by route, outcome and client API (chat, responses, messages, count_tokens, embeddings).",
            ["route", "outcome", "api"],
            registry=r,
        )
        self.dataplane_request_duration_seconds = Histogram(
            "turnout_dataplane_request_duration_seconds",
            "Client request duration.",
            ["route", "stream", "api"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.dataplane_attempts_total = Counter(
            "turnout_dataplane_attempts_total",
            "Upstream attempts by target and error class.",
            ["route", *_T, "error_class"],
            registry=r,
        )
        self.dataplane_failovers_total = Counter(
            "turnout_dataplane_failovers_total",
            "Failovers inside a request, by the error class that caused them.",
            ["route", "reason"],
            registry=r,
        )
        self.dataplane_cost_usd_total = Counter(
            "turnout_dataplane_cost_usd_total", "Estimated upstream spend.", ["route", *_T], registry=r
        )
        self.dataplane_tokens_total = Counter(
            "turnout_dataplane_tokens_total", "Tokens through the data plane.", ["route", *_T, "direction"], registry=r
        )
        self.dataplane_reports_dropped_total = Counter(
            "turnout_dataplane_reports_dropped_total", "Live outcomes dropped from a full report buffer.", registry=r
        )
        self.dataplane_key_refusals_total = Counter(
            "turnout_dataplane_key_refusals_total",
            "Client requests refused by the client-key check (missing, invalid, route, requests, tokens, quota).",
            ["reason"],
            registry=r,
        )
        # -- webhooks ------------------------------------------------------------------------
        self.webhook_deliveries_total = Counter(
            "turnout_webhook_deliveries_total", "Webhook delivery attempts by outcome.", ["outcome"], registry=r
        )
        self.webhook_queue_depth = Gauge("turnout_webhook_queue_depth", "Deliveries waiting to be sent.", registry=r)
        self.webhook_delivery_seconds = Histogram(
            "turnout_webhook_delivery_seconds",
            "Event creation to successful delivery.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # -- process -------------------------------------------------------------------------
        self.leader = Gauge("turnout_leader", "1 on the replica that holds leadership.", registry=r)
        self.ready = Gauge("turnout_ready", "1 when the store is writable and a table is loaded.", registry=r)
        self.replica_table_from_disk = Gauge(
            "turnout_replica_table_from_disk",
            "Data replicas: 1 while serving the table kept on local disk (no control replica answered since start).",
            registry=r,
        )
        self.build_info = Gauge(
            "turnout_build_info",
            "Always 1; the labels say which Turnout and Python run.",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        # label sets written by observe_table, so targets and routes that leave the config lose their series
        self._table_series: dict[str, set[tuple[str, ...]]] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, cached (`labels()` locks and validates every call): for the per-request and
        per-observation series, which are never removed (observe_table's series are, and do not use this)."""
        key = (id(metric), *labels)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*labels)
        return c


_ADMITTING = (State.CLOSED, State.HALF_OPEN)
_OTHER = "other"


@functools.lru_cache(maxsize=4096)
def _split(target: str) -> tuple[str, str]:
    """`provider/model` → labels; a malformed key still yields labels (metrics never crash a loop)."""
    try:
        ref = TargetRef.parse(target)
    except ValueError:
        return target or "unknown", ""
    return ref.provider, ref.model


def _bounded(value: str, limit: int = 48) -> str:
    """Label values from a fixed vocabulary pass; anything that looks like free text becomes `other`."""
    ok = 0 < len(value) <= limit and all(c.isalnum() or c in "_.-" for c in value)
    return value if ok else _OTHER


@dataclass(slots=True)
class _ObservationSeries:
    """The children one (target, source, error class) writes; the histograms made when first written."""

    total: Any
    provider: str
    model: str
    source: str
    latency: Any = None
    ttft: Any = None


def observe_observation(m: Metrics, obs: Observation) -> None:
    """Count one observation; record its latency, TTFT, tokens/s and headroom; for probes, outcome and success.

    Live traffic brings one per proxied request, so labelled children are looked up in a cache (`labels()` takes
    a lock and validates every call); series are still created only when first written."""
    key = (obs.target, obs.source, obs.error_class)
    series = m._observation_series.get(key)
    if series is None:
        provider, model = _split(obs.target)
        series = m._observation_series[key] = _ObservationSeries(
            m.child(m.observations_total, provider, model, str(obs.source), str(obs.error_class)),
            provider,
            model,
            str(obs.source),
        )
    series.total.inc()
    # Latency percentiles describe answered calls; a timeout's "latency" is the deadline, and an auth refusal's is
    # near zero: both would bend the percentiles without saying anything about speed (they are counted above).
    if obs.error_class is ErrorClass.OK:
        if obs.latency_s is not None:
            if series.latency is None:
                series.latency = m.child(m.latency_seconds, series.provider, series.model, series.source)
            series.latency.observe(obs.latency_s)
        if obs.ttft_s is not None:
            if series.ttft is None:
                series.ttft = m.child(m.ttft_seconds, series.provider, series.model, series.source)
            series.ttft.observe(obs.ttft_s)
    if obs.tokens_per_s is None and obs.headroom is None and obs.source is not Source.PROBE:
        return  # live traffic: done
    provider, model = _split(obs.target)
    child = m.child
    error_class = str(obs.error_class)
    if obs.tokens_per_s is not None:
        child(m.tokens_per_second, provider, model).set(obs.tokens_per_s)
    if obs.headroom is not None:
        child(m.capacity_headroom_ratio, provider, model).set(obs.headroom)
    if obs.source is Source.PROBE:
        kind = _bounded(obs.kind)
        child(m.probe_outcomes_total, provider, model, kind, error_class).inc()
        child(m.probe_success, provider, model, kind).set(1.0 if obs.ok else 0.0)


def observe_probe(
    m: Metrics, target: str, kind: str, duration_s: float, observations: Iterable[Observation] = ()
) -> None:
    """One probe run as the scheduler job sees it: its duration, then each observation it returned."""
    provider, model = _split(target)
    m.probe_duration_seconds.labels(provider, model, _bounded(kind)).observe(max(0.0, duration_s))
    for obs in observations:
        observe_observation(m, obs)


class TransitionLike(Protocol):
    """What observe_transition reads from a breaker Transition (controlplane/breaker.py)."""

    @property
    def target(self) -> str: ...
    @property
    def old(self) -> State: ...
    @property
    def new(self) -> State: ...
    @property
    def reason(self) -> str: ...


def observe_transition(m: Metrics, t: TransitionLike, *, would_block: bool = False) -> None:
    """Count one breaker transition; `would_block` marks one made in metrics_only mode (it blocked nothing)."""
    provider, model = _split(t.target)
    m.state_transitions_total.labels(provider, model, str(t.old), str(t.new), _bounded(str(t.reason))).inc()
    if would_block:
        m.would_block_total.labels(provider, model).inc()


def observe_recheck(m: Metrics, target: str, result: str) -> None:
    """Count one due recheck of a withdrawn target ("ok" or the error class it met)."""
    provider, model = _split(target)
    m.withdrawn_rechecks_total.labels(provider, model, _bounded(result)).inc()


def _replace_series(m: Metrics, family: str, gauge: Gauge, current: set[tuple[str, ...]]) -> None:
    """Drop the series of `gauge` written by an earlier table but absent from this one."""
    for gone in m._table_series.get(family, set()) - current:
        try:
            gauge.remove(*gone)
        except KeyError:
            pass
    m._table_series[family] = current


def observe_table(m: Metrics, table: Table) -> None:
    """Reflect a table into the state, up, score and rank gauges (series of removed targets/routes disappear)."""
    m.table_version.set(table.version)
    states: set[tuple[str, ...]] = set()
    ups: set[tuple[str, ...]] = set()
    entries = dict(table.targets)
    for ranking in table.routes.values():  # a table built without `targets` still reports its routes' targets
        for e in ranking.entries:
            entries.setdefault(e.target, e)
    for key, e in entries.items():
        provider, model = _split(key)
        for state in State:
            m.target_state.labels(provider, model, str(state)).set(1.0 if e.state is state else 0.0)
            states.add((provider, model, str(state)))
        m.target_up.labels(provider, model).set(1.0 if e.state in _ADMITTING else 0.0)
        ups.add((provider, model))
    _replace_series(m, "target_state", m.target_state, states)
    _replace_series(m, "target_up", m.target_up, ups)

    scores: set[tuple[str, ...]] = set()
    ranks: set[tuple[str, ...]] = set()
    routes: set[tuple[str, ...]] = set()
    for name, ranking in table.routes.items():
        m.route_admissible_targets.labels(name).set(len(ranking.admissible))
        m.route_panic.labels(name).set(1.0 if ranking.panic else 0.0)
        routes.add((name,))
        for e in ranking.entries:
            provider, model = _split(e.target)
            labels = (name, provider, model)
            m.route_target_rank.labels(*labels).set(e.rank if e.admissible and e.rank is not None else 0)
            ranks.add(labels)
            if e.score is not None:
                m.route_target_score.labels(*labels).set(e.score)
                scores.add(labels)
    _replace_series(m, "route_target_score", m.route_target_score, scores)
    _replace_series(m, "route_target_rank", m.route_target_rank, ranks)
    _replace_series(m, "route_admissible_targets", m.route_admissible_targets, routes)
    _replace_series(m, "route_panic", m.route_panic, routes)
    # Severities come from controlplane/severity.py, as on the status page, in `turnout status` and the export.
    from controlplane.severity import provider_severity, route_severity

    for name, ranking in table.routes.items():
        m.route_severity.labels(name).set(int(route_severity(ranking)))
    _replace_series(m, "route_severity", m.route_severity, routes)
    by_provider: dict[str, list[TableEntry]] = {}
    for key, e in entries.items():
        by_provider.setdefault(_split(key)[0], []).append(e)
    for p, es in by_provider.items():
        m.provider_severity.labels(p).set(int(provider_severity(es)))
    _replace_series(m, "provider_severity", m.provider_severity, {(p,) for p in by_provider})


def observe_event(m: Metrics, event: Event) -> None:
    """Count one emitted event by type (types outside EVENT_TYPES count as `other`)."""
    from controlplane.events import EVENT_TYPES

    m.events_total.labels(event.type if event.type in EVENT_TYPES else _OTHER).inc()


def render(m: Metrics) -> bytes:
    """The Prometheus text exposition of `m`'s registry (serve it with CONTENT_TYPE)."""
    return generate_latest(m.registry)


@dataclass(frozen=True, slots=True)
class MetricDoc:
    """One row of the metric reference: the exposed name, its type, its labels and what it means."""

    name: str
    type: str
    labels: tuple[str, ...]
    help: str


def catalogue(m: Metrics | None = None) -> list[MetricDoc]:
    """Every metric defined on Metrics, in definition order, as it appears in the exposition."""
    from prometheus_client.metrics import MetricWrapperBase

    docs = []
    for value in vars(m or Metrics()).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        # prometheus_client keeps name, type and label names on the wrapper only as underscored attributes;
        # they have been stable across its releases and are the only way to list labels of an unused metric.
        name, kind = value._name, str(value._type)
        exposed = f"{name}_total" if kind == "counter" else name
        docs.append(MetricDoc(exposed, kind, tuple(value._labelnames), value._documentation))
    return docs


def catalogue_markdown(m: Metrics | None = None) -> str:
    """docs/metrics.md: every metric with name, type, labels and meaning (regenerate: python -m controlplane.metrics)."""
    lines = [
        "# Turnout metrics",
        "",
        "Generated from `controlplane/metrics.py` by `python -m controlplane.metrics > docs/metrics.md`;",
        "a test fails when this page and the registry disagree. Served at `GET /metrics` on the control port.",
        "Histograms also expose `_bucket`, `_sum` and `_count` series; their buckets (seconds) are",
        f"`{', '.join(str(b) for b in LATENCY_BUCKETS)}`.",
        "",
        "Label values come from fixed vocabularies: `provider` and `model` from the config, `route` from the config,",
        "`kind` a probe kind, `source` `probe`|`live`, `error_class` and `state` as in concepts.md, `reason` a",
        "breaker reason or failover error class, `outcome` a delivery or request outcome. Never request ids or free",
        "text; anything else is reported as `other`.",
        "",
        "| name | type | labels | meaning |",
        "|---|---|---|---|",
    ]
    for d in catalogue(m):
        labels = ", ".join(f"`{x}`" for x in d.labels) or "—"
        lines.append(f"| `{d.name}` | {d.type} | {labels} | {d.help} |")
    lines += [
        "",
        "`turnout_dataplane_requests_total{outcome}` values that do not spend the error budget: "
        + ", ".join(f"`{o}`" for o in DATAPLANE_OK_OUTCOMES)
        + ". Every other outcome counts as an error in the burn-rate alerts.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m controlplane.metrics > docs/metrics.md
    print(catalogue_markdown(), end="")
