"""Generate Turnout's Grafana dashboards (dashboards/grafana/*.json) with the official grafana-foundation-sdk.

Run `python dashboards/build.py` after changing a panel; a test fails when the committed JSON differs from
what this script builds, and another runs every PromQL expression here against a real Prometheus.
Every query uses the `${datasource}` variable (no hard-coded datasource uid), and is templated by
`$provider` / `$route` (multi-value, "All" = `.*`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import BigValueColorMode, BigValueGraphMode
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

__all__ = ["DATASOURCE", "STATE_CODES", "uptime_dashboard", "dataplane_dashboard", "build_all", "main"]

OUT = Path(__file__).resolve().parent / "grafana"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
P = 'provider=~"$provider"'
R = 'route=~"$route"'
# The state timeline needs one number per target: the one-hot `turnout_target_state` gauge folded into a code.
STATE_CODES = {"closed": 0, "half_open": 1, "open": 2, "withdrawn": 3, "drained": 4}
STATE_COLOURS = {"closed": "green", "half_open": "yellow", "open": "red", "withdrawn": "purple", "drained": "gray"}
_STATE_EXPR = " + ".join(
    f'{code} * max by (provider, model) (turnout_target_state{{state="{s}", {P}}})' for s, code in STATE_CODES.items()
)
# Data-plane outcomes that do not spend the error budget (controlplane.metrics.DATAPLANE_OK_OUTCOMES); as in
# alerts.yml, client_error and client_gone are left out of the denominator too (the caller's doing).
_OK_OUTCOMES = "ok|client_error|client_gone"


def q(expr: str, legend: str = "", *, instant: bool = False, table_format: bool = False) -> Dataquery:
    query = Dataquery().expr(expr).datasource(DATASOURCE)
    if legend:
        query = query.legend_format(legend)
    if instant:
        query = query.instant()
    if table_format:
        query = query.format(PromQueryFormat.TABLE)
    return query


def _last() -> ReduceDataOptions:
    return ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def _thresholds(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(value=v, color=c) for v, c in steps])


def ts(title: str, unit: str, *queries: Dataquery, w: int = 12, h: int = 8, desc: str = "") -> timeseries.Panel:
    p = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).span(w).height(h).fill_opacity(10)
    if desc:
        p = p.description(desc)
    for query in queries:
        p = p.with_target(query)
    return p


def _variables(d: Dashboard, *, provider: bool, route: bool) -> Dashboard:
    d = d.with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
    every = VariableOption(selected=True, text="All", value="$__all")
    if provider:
        d = d.with_variable(
            QueryVariable("provider")
            .label("Provider")
            .datasource(DATASOURCE)
            .query("label_values(turnout_target_up, provider)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(every)
        )
    if route:
        d = d.with_variable(
            QueryVariable("route")
            .label("Route")
            .datasource(DATASOURCE)
            .query("label_values(turnout_route_admissible_targets, route)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(every)
        )
    return d


def uptime_dashboard() -> Dashboard:
    """Targets and routes: availability, state timeline, latency/TTFT, error classes, headroom, failovers, ranking."""
    d = (
        Dashboard("Turnout / Uptime")
        .uid("turnout-uptime")
        .description("Health of every LLM provider target Turnout probes, and how routes rank them.")
        .tags(["turnout", "generated"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
        .editable()
    )
    d = _variables(d, provider=True, route=True)
    state_map = ValueMap(
        {str(code): ValueMappingResult(text=s, color=STATE_COLOURS[s], index=code) for s, code in STATE_CODES.items()}
    )
    d = (
        d.with_row(Row("Now"))
        .with_panel(
            stat.Panel()
            .title("Admissible targets per route")
            .datasource(DATASOURCE)
            .span(8)
            .height(5)
            .with_target(q(f"turnout_route_admissible_targets{{{R}}}", "{{route}}", instant=True))
            .thresholds(_thresholds((None, "red"), (1, "orange"), (2, "green")))
            .color_mode(BigValueColorMode.BACKGROUND)
            .graph_mode(BigValueGraphMode.NONE)
            .reduce_options(_last())
        )
        .with_panel(
            stat.Panel()
            .title("Targets by state")
            .datasource(DATASOURCE)
            .span(10)
            .height(5)
            .with_target(q(f"sum by (state) (turnout_target_state{{{P}}})", "{{state}}", instant=True))
            .graph_mode(BigValueGraphMode.NONE)
            .reduce_options(_last())
        )
        .with_panel(
            stat.Panel()
            .title("Table version")
            .datasource(DATASOURCE)
            .span(6)
            .height(5)
            .with_target(q("max(turnout_table_version)", "version", instant=True))
            .graph_mode(BigValueGraphMode.AREA)
            .reduce_options(_last())
        )
        .with_panel(
            table.Panel()
            .title("Current ranking (rank 1 = primary)")
            .datasource(DATASOURCE)
            .span(24)
            .height(8)
            .description("Admissible targets of each route in rank order, with their ranking score.")
            .with_target(q(f"turnout_route_target_rank{{{R}, {P}}} > 0", instant=True, table_format=True))
            .with_target(q(f"turnout_route_target_score{{{R}, {P}}}", instant=True, table_format=True))
        )
        .with_row(Row("Availability over the time range"))
        .with_panel(
            bargauge.Panel()
            .title("Availability per provider (time admissible)")
            .datasource(DATASOURCE)
            .span(8)
            .height(8)
            .unit("percentunit")
            .min(0)
            .max(1)
            .reduce_options(_last())
            .with_target(
                q(
                    f"avg by (provider) (avg_over_time(turnout_target_up{{{P}}}[$__range]))",
                    "{{provider}}",
                    instant=True,
                )
            )
            .thresholds(_thresholds((None, "red"), (0.99, "orange"), (0.999, "green")))
        )
        .with_panel(
            bargauge.Panel()
            .title("Availability per target (time admissible)")
            .datasource(DATASOURCE)
            .span(8)
            .height(8)
            .unit("percentunit")
            .min(0)
            .max(1)
            .reduce_options(_last())
            .with_target(
                q(f"avg_over_time(turnout_target_up{{{P}}}[$__range])", "{{provider}}/{{model}}", instant=True)
            )
            .thresholds(_thresholds((None, "red"), (0.99, "orange"), (0.999, "green")))
        )
        .with_panel(
            bargauge.Panel()
            .title("Success ratio per target (probes + live)")
            .datasource(DATASOURCE)
            .span(8)
            .height(8)
            .unit("percentunit")
            .min(0)
            .max(1)
            .reduce_options(_last())
            .description("ok observations / all observations except the callers' own client errors.")
            .with_target(
                q(
                    f'sum by (provider, model) (increase(turnout_observations_total{{error_class="ok", {P}}}[$__range]))'
                    f' / sum by (provider, model) (increase(turnout_observations_total{{error_class!="client_error", {P}}}[$__range]))',
                    "{{provider}}/{{model}}",
                    instant=True,
                )
            )
            .thresholds(_thresholds((None, "red"), (0.95, "orange"), (0.99, "green")))
        )
        .with_panel(
            statetimeline.Panel()
            .title("Breaker state timeline")
            .datasource(DATASOURCE)
            .span(24)
            .height(9)
            .with_target(q(_STATE_EXPR, "{{provider}}/{{model}}"))
            .mappings([state_map])
            .merge_values(True)
            .fill_opacity(80)
        )
        .with_row(Row("Latency"))
        .with_panel(
            ts(
                "Upstream latency p50 / p95",
                "s",
                *(
                    q(
                        f"histogram_quantile({qq}, sum by (le, provider, model) (rate(turnout_latency_seconds_bucket{{{P}}}[$__rate_interval])))",
                        f"p{int(qq * 100)} {{{{provider}}}}/{{{{model}}}}",
                    )
                    for qq in (0.5, 0.95)
                ),
            )
        )
        .with_panel(
            ts(
                "Time to first token p50 / p95",
                "s",
                *(
                    q(
                        f"histogram_quantile({qq}, sum by (le, provider, model) (rate(turnout_ttft_seconds_bucket{{{P}}}[$__rate_interval])))",
                        f"p{int(qq * 100)} {{{{provider}}}}/{{{{model}}}}",
                    )
                    for qq in (0.5, 0.95)
                ),
            )
        )
        .with_panel(
            ts(
                "Probe duration p95 by kind",
                "s",
                q(
                    f"histogram_quantile(0.95, sum by (le, provider, kind) (rate(turnout_probe_duration_seconds_bucket{{{P}}}[$__rate_interval])))",
                    "{{provider}} {{kind}}",
                ),
            )
        )
        .with_panel(
            ts("Output tokens per second", "none", q(f"turnout_tokens_per_second{{{P}}}", "{{provider}}/{{model}}"))
        )
        .with_row(Row("Errors, capacity and failovers"))
        .with_panel(
            ts(
                "Observations by error class",
                "ops",
                q(
                    f'sum by (error_class) (rate(turnout_observations_total{{error_class!="ok", {P}}}[$__rate_interval]))',
                    "{{error_class}}",
                ),
                desc="Failed probe and live outcomes per second, by the error class the adapters assigned.",
            )
        )
        .with_panel(
            ts(
                "Capacity headroom",
                "percentunit",
                q(f"turnout_capacity_headroom_ratio{{{P}}}", "{{provider}}/{{model}}"),
                desc="Remaining / limit of the binding rate-limit dimension, from the providers' headers.",
            )
        )
        .with_panel(
            ts(
                "Breaker transitions",
                "short",
                q(
                    f"sum by (provider, model, to_state) (increase(turnout_state_transitions_total{{{P}}}[$__rate_interval]))",
                    "{{provider}}/{{model}} → {{to_state}}",
                ),
            )
        )
        .with_panel(
            ts(
                "Failovers inside requests, by reason",
                "short",
                q(
                    f"sum by (route, reason) (increase(turnout_dataplane_failovers_total{{{R}}}[$__rate_interval]))",
                    "{{route}}: {{reason}}",
                ),
            )
        )
        .with_row(Row("Control plane"))
        .with_panel(
            ts(
                "Probe scheduler lag p95",
                "s",
                q(
                    "histogram_quantile(0.95, sum by (le) (rate(turnout_scheduler_lag_seconds_bucket[$__rate_interval])))",
                    "p95 lag",
                ),
                w=8,
            )
        )
        .with_panel(
            ts(
                "Webhook deliveries by outcome",
                "ops",
                q("sum by (outcome) (rate(turnout_webhook_deliveries_total[$__rate_interval]))", "{{outcome}}"),
                w=8,
            )
        )
        .with_panel(ts("Webhook queue depth", "short", q("max(turnout_webhook_queue_depth)", "waiting"), w=8))
    )
    return d


def dataplane_dashboard() -> Dashboard:
    """The OpenAI-compatible endpoint: traffic, errors and budget, duration, attempts, failovers, tokens, spend."""
    d = (
        Dashboard("Turnout / Data plane")
        .uid("turnout-dataplane")
        .description("Client requests through Turnout's OpenAI-compatible endpoint, per route.")
        .tags(["turnout", "generated"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
        .editable()
    )
    d = _variables(d, provider=True, route=True)
    errors = f'sum(rate(turnout_dataplane_requests_total{{outcome!~"{_OK_OUTCOMES}", {R}}}[$__rate_interval]))'
    every = f'sum(rate(turnout_dataplane_requests_total{{outcome!~"client_error|client_gone", {R}}}[$__rate_interval]))'
    d = (
        d.with_row(Row("Traffic"))
        .with_panel(
            ts(
                "Requests by route and outcome",
                "reqps",
                q(
                    f"sum by (route, outcome) (rate(turnout_dataplane_requests_total{{{R}}}[$__rate_interval]))",
                    "{{route}} {{outcome}}",
                ),
            )
        )
        .with_panel(
            ts(
                "Error ratio (spends the error budget)",
                "percentunit",
                q(f"({errors} or vector(0)) / {every}", "error ratio"),
                desc="Requests that ended in anything but ok, over all requests except client errors and disconnects (SLO 99.5 %).",
            )
        )
        .with_panel(
            ts(
                "Request duration p50 / p95 / p99",
                "s",
                *(
                    q(
                        f"histogram_quantile({qq}, sum by (le, route) (rate(turnout_dataplane_request_duration_seconds_bucket{{{R}}}[$__rate_interval])))",
                        f"p{int(qq * 100)} {{{{route}}}}",
                    )
                    for qq in (0.5, 0.95, 0.99)
                ),
            )
        )
        .with_panel(
            ts(
                "Upstream attempts per request",
                "short",
                q(
                    f"sum by (route) (rate(turnout_dataplane_attempts_total{{{R}}}[$__rate_interval]))"
                    f" / sum by (route) (rate(turnout_dataplane_requests_total{{{R}}}[$__rate_interval]))",
                    "{{route}}",
                ),
            )
        )
        .with_row(Row("Targets and failovers"))
        .with_panel(
            ts(
                "Attempts by target and error class",
                "ops",
                q(
                    f"sum by (provider, model, error_class) (rate(turnout_dataplane_attempts_total{{{R}, {P}}}[$__rate_interval]))",
                    "{{provider}}/{{model}} {{error_class}}",
                ),
            )
        )
        .with_panel(
            ts(
                "Failovers by reason",
                "short",
                q(
                    f"sum by (reason) (increase(turnout_dataplane_failovers_total{{{R}}}[$__rate_interval]))",
                    "{{reason}}",
                ),
            )
        )
        .with_panel(
            ts(
                "Live TTFT p95 by target",
                "s",
                q(
                    f'histogram_quantile(0.95, sum by (le, provider, model) (rate(turnout_ttft_seconds_bucket{{source="live", {P}}}[$__rate_interval])))',
                    "{{provider}}/{{model}}",
                ),
            )
        )
        .with_panel(
            ts(
                "Primary per route (rank 1)",
                "short",
                q(f"turnout_route_target_rank{{{R}, {P}}} == 1", "{{route}}: {{provider}}/{{model}}"),
                desc="Which target each route sends traffic to first; a step is a failover of the primary.",
            )
        )
        .with_row(Row("Tokens and spend"))
        .with_panel(
            ts(
                "Tokens per second by direction",
                "short",
                q(
                    f"sum by (route, direction) (rate(turnout_dataplane_tokens_total{{{R}}}[$__rate_interval]))",
                    "{{route}} {{direction}}",
                ),
                w=8,
            )
        )
        .with_panel(
            ts(
                "Upstream spend (USD per hour)",
                "currencyUSD",
                q(
                    f"sum by (route) (rate(turnout_dataplane_cost_usd_total{{{R}}}[$__rate_interval])) * 3600",
                    "{{route}}",
                ),
                w=8,
            )
        )
        .with_panel(
            ts(
                "Live outcome reports dropped",
                "short",
                q("sum(increase(turnout_dataplane_reports_dropped_total[$__rate_interval]))", "dropped"),
                w=8,
            )
        )
    )
    return d


def _number_panels(model: dict[str, Any]) -> dict[str, Any]:
    # Grafana wants unique panel ids; the SDK leaves them to the caller.
    for i, panel in enumerate(model.get("panels", []), start=1):
        panel["id"] = i
        for j, target in enumerate(panel.get("targets", [])):
            if not target.get("refId"):
                target["refId"] = chr(ord("A") + j)
    return model


def build_all() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    out = {}
    for name, builder in (
        ("turnout-uptime.json", uptime_dashboard()),
        ("turnout-dataplane.json", dataplane_dashboard()),
    ):
        model = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
        out[name] = json.dumps(_number_panels(model), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    """Write dashboards/grafana/*.json (or, with --check, exit 1 when they are out of date)."""
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = []
    for name, text in build_all().items():
        path = OUT / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python dashboards/build.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
