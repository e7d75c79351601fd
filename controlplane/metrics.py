"""Every Prometheus metric Turnout exposes, defined in one place (prefix `turnout_`, base units in names).

Labels stay bounded: provider, model, route, kind, error_class, state, reason (a fixed vocabulary),
outcome. Never request ids or free text. Each `Metrics` owns its registry, so tests get a fresh one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics", "LATENCY_BUCKETS"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_T = ("provider", "model")


class Metrics:
    """All metric objects; attribute name = metric name without the `turnout_` prefix."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        # -- probes ---------------------------------------------------------------------------
        self.probe_duration_seconds = Histogram(
            "turnout_probe_duration_seconds", "Probe duration by kind.", [*_T, "kind"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.probe_success = Gauge("turnout_probe_success", "1 if the last probe of this kind succeeded.", [*_T, "kind"], registry=r)
        self.probe_outcomes_total = Counter(
            "turnout_probe_outcomes_total", "Probe outcomes by error class.", [*_T, "kind", "error_class"], registry=r
        )
        self.probes_skipped_total = Counter(
            "turnout_probes_skipped_total", "Probes not run (budget spent, withdrawn recheck not due).", [*_T, "kind", "reason"], registry=r
        )
        self.probe_spend_usd_total = Counter("turnout_probe_spend_usd_total", "Estimated spend of paid probes.", ["provider"], registry=r)
        self.scheduler_lag_seconds = Histogram(
            "turnout_scheduler_lag_seconds", "Delay between a probe's planned and actual start.", buckets=LATENCY_BUCKETS, registry=r
        )
        # -- target health -------------------------------------------------------------------
        self.ttft_seconds = Histogram(
            "turnout_ttft_seconds", "Time to first token.", [*_T, "source"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.latency_seconds = Histogram(
            "turnout_latency_seconds", "Upstream call latency.", [*_T, "source"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.tokens_per_second = Gauge("turnout_tokens_per_second", "Output tokens per second (last completion probe).", _T, registry=r)
        self.observations_total = Counter(
            "turnout_observations_total", "Observations by source and error class.", [*_T, "source", "error_class"], registry=r
        )
        self.target_state = Gauge("turnout_target_state", "1 for the target's current breaker state, else 0.", [*_T, "state"], registry=r)
        self.target_up = Gauge("turnout_target_up", "1 if the target is admissible (closed or half_open).", _T, registry=r)
        self.capacity_headroom_ratio = Gauge("turnout_capacity_headroom_ratio", "Remaining/limit of the binding rate-limit dimension.", _T, registry=r)
        self.state_transitions_total = Counter(
            "turnout_state_transitions_total", "Breaker transitions.", [*_T, "from_state", "to_state", "reason"], registry=r
        )
        self.would_block_total = Counter(
            "turnout_breaker_would_block_total", "Transitions the breaker made while in metrics_only mode.", _T, registry=r
        )
        # -- routes and table ----------------------------------------------------------------
        self.route_target_score = Gauge("turnout_route_target_score", "Ranking score of a target in a route.", ["route", *_T], registry=r)
        self.route_target_rank = Gauge("turnout_route_target_rank", "Rank (1 = primary; 0 = not admissible).", ["route", *_T], registry=r)
        self.route_admissible_targets = Gauge("turnout_route_admissible_targets", "Admissible targets per route.", ["route"], registry=r)
        self.route_panic = Gauge("turnout_route_panic", "1 while the route ranks least-bad (panic threshold).", ["route"], registry=r)
        self.table_version = Gauge("turnout_table_version", "Version of the published table.", registry=r)
        self.events_total = Counter("turnout_events_total", "Events emitted by type.", ["type"], registry=r)
        # -- data plane ----------------------------------------------------------------------
        self.dataplane_requests_total = Counter(
            "turnout_dataplane_requests_total", "Client requests by route and outcome.", ["route", "outcome"], registry=r
        )
        self.dataplane_request_duration_seconds = Histogram(
            "turnout_dataplane_request_duration_seconds", "Client request duration.", ["route", "stream"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.dataplane_attempts_total = Counter(
            "turnout_dataplane_attempts_total", "Upstream attempts by target and error class.", ["route", *_T, "error_class"], registry=r
        )
        self.dataplane_failovers_total = Counter(
            "turnout_dataplane_failovers_total", "Failovers inside a request, by the error class that caused them.", ["route", "reason"], registry=r
        )
        self.dataplane_cost_usd_total = Counter("turnout_dataplane_cost_usd_total", "Estimated upstream spend.", ["route", *_T], registry=r)
        self.dataplane_tokens_total = Counter("turnout_dataplane_tokens_total", "Tokens through the data plane.", ["route", *_T, "direction"], registry=r)
        self.dataplane_reports_dropped_total = Counter(
            "turnout_dataplane_reports_dropped_total", "Live outcomes dropped from a full report buffer.", registry=r
        )
        # -- webhooks ------------------------------------------------------------------------
        self.webhook_deliveries_total = Counter("turnout_webhook_deliveries_total", "Webhook delivery attempts by outcome.", ["outcome"], registry=r)
        self.webhook_queue_depth = Gauge("turnout_webhook_queue_depth", "Deliveries waiting to be sent.", registry=r)
        self.webhook_delivery_seconds = Histogram(
            "turnout_webhook_delivery_seconds", "Event creation to successful delivery.", buckets=LATENCY_BUCKETS, registry=r
        )
        # -- process -------------------------------------------------------------------------
        self.leader = Gauge("turnout_leader", "1 on the replica that holds leadership.", registry=r)
        self.ready = Gauge("turnout_ready", "1 when the store is writable and a table is loaded.", registry=r)
