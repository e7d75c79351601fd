"""Signals kept apart (issue 17): latency and TTFT per source, failure rates not diluted by cheap probes, the
table's figures of now between versions, and one severity for every reader."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controlplane.api.summary import build_summary
from controlplane.commands.status_cmd import _severities
from controlplane.config_loader import parse_config
from controlplane.domain import ErrorClass, Observation, Source, State
from controlplane.health import HealthModel
from controlplane.metrics import Metrics, observe_table
from controlplane.severity import Severity, route_severity
from controlplane.statuspage import build_view, render_status_page
from controlplane.window import Signal, SlidingWindow, Verdict
from tests.api.fakes import make_config, make_table
from tests.fakes import FakeClock

E = ErrorClass


def _win(**kw: Any) -> SlidingWindow:
    args: dict[str, Any] = dict(
        min_calls=4,
        failure_rate_threshold=0.5,
        slow_call_threshold=5.0,
        slow_call_rate_threshold=1.0,
        consecutive_failures=4,
    )
    args.update(kw)
    return SlidingWindow(60, **args)


def test_latency_and_ttft_come_from_live_else_completion_never_from_listings() -> None:
    w = _win()
    for i in range(20):
        w.add(i * 0.1, failed=False, latency_s=0.002, signal=Signal.CHEAP)  # catalogue listings
    f = w.figures(2)
    assert f.latency_p50_s is None and f.latency_source is None  # a listing's round trip is no serving figure
    for i in range(3):
        w.add(3 + i, failed=False, latency_s=0.9, ttft_s=0.38, signal=Signal.COMPLETION)
    f = w.figures(6)
    assert (f.latency_p50_s, f.ttft_p50_s, f.latency_source, f.latency_samples) == (0.9, 0.38, "completion", 3)
    assert f.latency_p50_s is not None and f.ttft_p50_s is not None
    assert f.latency_p50_s >= f.ttft_p50_s  # total latency is never below time to first token
    w.add(7, failed=False, latency_s=1.4, ttft_s=0.5, signal=Signal.LIVE)
    f = w.figures(7)
    assert (f.latency_p50_s, f.ttft_p50_s, f.latency_source, f.ttft_samples) == (1.4, 0.5, "live", 1)


def test_completion_failure_rate_is_not_diluted_by_successful_listings() -> None:
    w = _win(consecutive_failures=100)
    for i in range(30):
        w.add(i * 0.1, failed=False, latency_s=0.002, signal=Signal.CHEAP)
    for i in range(4):
        w.add(4 + i, failed=True, error_class="server_error", status=503, signal=Signal.COMPLETION)
    f = w.figures(8)
    assert (f.error_rate, f.error_source, f.error_samples) == (1.0, "serving", 4)
    assert w.verdict(8) is Verdict.FAILURE_RATE_EXCEEDED  # mixed, it would read 4 of 34 calls: 12 %
    snap = w.snapshot(8)
    assert (snap.calls, snap.failures, snap.group) == (4, 4, "serving")


def test_a_listing_success_does_not_end_a_completion_failure_streak() -> None:
    w = _win(consecutive_failures=3, min_calls=100)
    for i in range(3):
        w.add(i, failed=True, error_class="timeout", signal=Signal.COMPLETION)
        w.add(i + 0.5, failed=False, latency_s=0.002, signal=Signal.CHEAP)
    assert w.verdict(3) is Verdict.CONSECUTIVE_FAILURES


YAML = """
providers:
  - {id: a, adapter: openai, base_url: "http://a", models: [{name: m}]}
  - {id: b, adapter: anthropic, base_url: "http://b", models: [{name: m}]}
routes:
  - {name: r, targets: [a/m, b/m]}
breaker: {min_calls: 50, consecutive_failures: 50}
"""


def _ob(clock: FakeClock, target: str, cls: ErrorClass = E.OK, kind: str = "completion", **kw: Any) -> Observation:
    source = Source.LIVE if kind == "live" else Source.PROBE
    return Observation(target=target, at=clock.wall(), source=source, kind=kind, error_class=cls, **kw)


def test_table_entries_say_where_figures_come_from_and_ranking_ignores_listings() -> None:
    clock = FakeClock()
    m = HealthModel(parse_config(YAML), clock, rerank_interval=0.0)
    for _ in range(10):
        m.ingest(_ob(clock, "b/m", kind="catalogue", latency_s=0.002))
        m.ingest(_ob(clock, "a/m", latency_s=0.3, ttft_s=0.1))
        m.ingest(_ob(clock, "b/m", latency_s=0.3, ttft_s=0.1))
    now_ = m.table.with_figures(m.figures_now())
    a, b = now_.targets["a/m"], now_.targets["b/m"]
    assert (b.latency_p50_s, b.latency_source, b.latency_samples) == (0.3, "completion", 10)
    assert (b.error_rate, b.error_source, b.error_samples) == (0.0, "serving", 10)
    assert (a.latency_p50_s, a.ttft_p50_s) == (b.latency_p50_s, b.ttft_p50_s)  # b's listings do not make it faster
    detail = m.target_detail("b/m")["window"]
    assert detail["calls_by_source"] == {"live": 0, "completion": 10, "cheap": 10}


def test_status_page_figures_move_between_table_versions_while_the_order_does_not() -> None:
    clock = FakeClock()
    m = HealthModel(parse_config(YAML), clock, rerank_interval=0.0)
    for _ in range(5):
        m.ingest(_ob(clock, "a/m", kind="live", latency_s=0.2))
    m.tick()
    version = m.table.version
    before = build_view(m.table.with_figures(m.figures_now()), now=clock.wall())
    for _ in range(5):
        clock.advance(0.5)
        m.ingest(_ob(clock, "a/m", E.SERVER_ERROR, kind="live", status=503))
    m.tick()
    assert m.table.version == version  # nothing changed order or state: no new version
    published = m.table.targets["a/m"].error_rate
    now_ = m.table.with_figures(m.figures_now())
    assert published != 0.5 and now_.targets["a/m"].error_rate == 0.5  # the published figure is of an older moment
    after = build_view(now_, now=clock.wall())
    row_before = before.routes[0].rows[0]
    row_after = after.routes[0].rows[0]
    assert row_before.entry.target == row_after.entry.target == "a/m"
    html = render_status_page(after)
    assert "50%" in html and "serving, n=10" in html
    # the closed target's reason is remade from the same figures: words and numbers agree
    assert row_after.entry.reason == "closed: p50 0.20 s, 50% errors" != row_before.entry.reason


def test_headroom_is_not_shown_for_a_target_that_is_not_admissible() -> None:
    clock = FakeClock()
    m = HealthModel(parse_config(YAML), clock, rerank_interval=0.0)
    m.ingest(_ob(clock, "a/m", headroom=0.98))
    m.ingest(_ob(clock, "a/m", E.REGION_BLOCKED, status=403))
    assert m.states()["a/m"] is State.WITHDRAWN
    assert m.table.targets["a/m"].headroom is None
    assert m.figures_now()["a/m"].headroom is None and m.target_detail("a/m")["headroom"] is None


MIXES: list[dict[str, State]] = [
    {},
    {"openai/gpt-4o": State.HALF_OPEN},
    {"openai/gpt-4o": State.OPEN},
    {"openai/gpt-4o": State.WITHDRAWN},
    {"openai/gpt-4o": State.DRAINED},
    {"openai/gpt-4o": State.OPEN, "anthropic/claude-sonnet-4": State.OPEN, "deepseek/deepseek-chat": State.OPEN},
    {"openai/gpt-4o": State.WITHDRAWN, "anthropic/claude-sonnet-4": State.OPEN, "deepseek/deepseek-chat": State.OPEN},
    {t: State.OPEN for t in ("openai/gpt-4o", "anthropic/claude-sonnet-4", "deepseek/deepseek-chat", "vllm/llama")},
]
_INDICATOR = {Severity.OPERATIONAL: "none", Severity.MAINTENANCE: "none", Severity.DEGRADED: "minor"}


@pytest.mark.parametrize("mix", MIXES, ids=lambda m: ",".join(f"{k.split('/')[0]}={v}" for k, v in m.items()) or "ok")
def test_severity_is_the_same_on_page_cli_statuspage_export_and_metrics(mix: dict[str, State]) -> None:
    cfg = make_config(True)
    table = make_table(cfg, 3, {k: v for k, v in mix.items() if k in cfg.target_keys()})
    view = build_view(table, now=table.published_at)
    cli = _severities(table.to_dict())
    assert cli is not None
    cli_page, cli_routes = cli
    m = Metrics(CollectorRegistry())
    observe_table(m, table)
    summary = build_summary(table, cfg, lambda _t: None)
    for rv in view.routes:
        sev = route_severity(table.routes[rv.name])
        assert rv.severity is sev is cli_routes[rv.name]
        assert m.registry.get_sample_value("turnout_route_severity", {"route": rv.name}) == int(sev)
    assert view.severity is cli_page
    down = [r.name for r in view.routes if r.severity is Severity.MAJOR]
    indicator = summary["status"]["indicator"]
    if down:
        assert indicator in ("major", "critical") and view.overall == "major"
        assert 'class="banner major"' in render_status_page(view)
    else:
        assert indicator == _INDICATOR.get(view.severity, "minor")
    groups = {c["name"]: c["status"] for c in summary["components"] if c["group"]}
    for provider, status in groups.items():
        level = m.registry.get_sample_value("turnout_provider_severity", {"provider": provider})
        assert level is not None
        assert (
            status
            == ("operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage")[
                int(level)
            ]
        )
