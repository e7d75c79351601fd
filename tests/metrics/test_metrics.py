"""The observe_* helpers reflect pipeline values into the metric catalogue with bounded labels."""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.domain import ErrorClass, Observation, Source, State
from controlplane.events import Event
from controlplane.metrics import (
    Metrics,
    catalogue,
    observe_event,
    observe_observation,
    observe_probe,
    observe_table,
    observe_transition,
    render,
)
from controlplane.table import RouteRanking, Table
from tests.statuspage.sample import NOW, entry, sample_table


def v(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_probe_observation_counts_outcome_and_success_by_kind() -> None:
    m = Metrics()
    ok = Observation.success(
        "openai/gpt-4o", kind="completion", at=NOW, latency_s=0.4, ttft_s=0.2, tokens_per_s=55.0, headroom=0.7
    )
    bad = Observation.failure("openai/gpt-4o", ErrorClass.RATE_LIMITED, kind="catalogue", at=NOW, latency_s=9.0)
    observe_observation(m, ok)
    observe_observation(m, bad)
    t = {"provider": "openai", "model": "gpt-4o"}
    assert v(m, "turnout_probe_outcomes_total", **t, kind="completion", error_class="ok") == 1
    assert v(m, "turnout_probe_outcomes_total", **t, kind="catalogue", error_class="rate_limited") == 1
    assert v(m, "turnout_probe_success", **t, kind="completion") == 1
    assert v(m, "turnout_probe_success", **t, kind="catalogue") == 0
    assert v(m, "turnout_observations_total", **t, source="probe", error_class="rate_limited") == 1
    assert v(m, "turnout_tokens_per_second", **t) == 55.0
    assert v(m, "turnout_capacity_headroom_ratio", **t) == 0.7
    # only the answered call's latency enters the histogram: a failure's duration says nothing about speed
    assert v(m, "turnout_latency_seconds_count", **t, source="probe") == 1
    assert v(m, "turnout_latency_seconds_sum", **t, source="probe") == 0.4
    assert v(m, "turnout_ttft_seconds_count", **t, source="probe") == 1


def test_live_observation_is_not_counted_as_a_probe() -> None:
    m = Metrics()
    observe_observation(
        m, Observation.success("anthropic/claude-sonnet-4", kind="live", source=Source.LIVE, at=NOW, latency_s=1.0)
    )
    t = {"provider": "anthropic", "model": "claude-sonnet-4"}
    assert v(m, "turnout_observations_total", **t, source="live", error_class="ok") == 1
    assert v(m, "turnout_latency_seconds_count", **t, source="live") == 1
    assert v(m, "turnout_probe_outcomes_total", **t, kind="live", error_class="ok") is None


def test_model_names_with_slashes_keep_the_provider_label() -> None:
    m = Metrics()
    observe_observation(m, Observation.success("openrouter/meta-llama/llama-3-70b", kind="catalogue", at=NOW))
    assert v(m, "turnout_probe_success", provider="openrouter", model="meta-llama/llama-3-70b", kind="catalogue") == 1


def test_free_text_never_becomes_a_label_value() -> None:
    @dataclass
    class T:
        target: str
        old: State
        new: State
        reason: str

    m = Metrics()
    observe_transition(m, T("openai/gpt-4o", State.CLOSED, State.OPEN, "7 x server_error (503) for req-123"))
    observe_probe(m, "openai/gpt-4o", "weird kind with spaces", 0.5)
    observe_event(m, Event("not.a.type", NOW, "x"))
    text = render(m).decode()
    assert "req-123" not in text and "weird kind" not in text and "not.a.type" not in text
    assert (
        v(
            m,
            "turnout_state_transitions_total",
            provider="openai",
            model="gpt-4o",
            from_state="closed",
            to_state="open",
            reason="other",
        )
        == 1
    )
    assert v(m, "turnout_events_total", type="other") == 1


def test_transition_counts_and_metrics_only_would_block() -> None:
    from controlplane.moves import Evidence, Transition  # the real value the health model returns

    m = Metrics()
    t = Transition(
        "deepseek/deepseek-chat",
        State.CLOSED,
        State.WITHDRAWN,
        "region_blocked",
        Evidence(error_class="region_blocked"),
    )
    observe_transition(m, t, would_block=True)
    t2 = {"provider": "deepseek", "model": "deepseek-chat"}
    assert (
        v(
            m,
            "turnout_state_transitions_total",
            **t2,
            from_state="closed",
            to_state="withdrawn",
            reason="region_blocked",
        )
        == 1
    )
    assert v(m, "turnout_breaker_would_block_total", **t2) == 1


def test_table_sets_one_hot_state_up_rank_and_score() -> None:
    m = Metrics()
    observe_table(m, sample_table(version=7))
    assert v(m, "turnout_table_version") == 7
    w = {"provider": "deepseek", "model": "deepseek-chat"}
    assert v(m, "turnout_target_state", **w, state="withdrawn") == 1
    assert v(m, "turnout_target_state", **w, state="closed") == 0
    assert v(m, "turnout_target_up", **w) == 0
    assert v(m, "turnout_target_up", provider="anthropic", model="claude-sonnet-4") == 1  # half_open admits
    assert v(m, "turnout_target_up", provider="local", model="llama") == 0  # drained
    assert v(m, "turnout_route_target_rank", route="frontier", provider="openai", model="gpt-4o") == 1
    assert v(m, "turnout_route_target_rank", route="frontier", **w) == 0
    assert v(m, "turnout_route_target_score", route="frontier", provider="openai", model="gpt-4o") == 0.91
    assert v(m, "turnout_route_admissible_targets", route="frontier") == 2
    assert v(m, "turnout_route_admissible_targets", route="cheap-fast") == 0


def test_series_of_removed_targets_and_routes_disappear() -> None:
    m = Metrics()
    observe_table(m, sample_table(version=1))
    only = entry("openai/gpt-4o", State.CLOSED, 1, 0.9, "closed")
    observe_table(
        m,
        Table(
            version=2,
            published_at=NOW,
            routes={"frontier": RouteRanking("frontier", (only,))},
            targets={only.target: only},
        ),
    )
    text = render(m).decode()
    assert "deepseek" not in text and "cheap-fast" not in text
    assert v(m, "turnout_target_up", provider="openai", model="gpt-4o") == 1


def test_catalogue_lists_every_metric_with_prefix_units_and_bounded_labels() -> None:
    allowed = {
        "provider",
        "model",
        "route",
        "kind",
        "error_class",
        "state",
        "from_state",
        "to_state",
        "reason",
        "outcome",
        "source",
        "type",
        "stream",
        "direction",
        "version",  # turnout_build_info: one series per process, whose value is fixed at start
        "python",
    }
    docs = catalogue()
    assert len(docs) == len({d.name for d in docs}) >= 30
    for d in docs:
        assert d.name.startswith("turnout_"), d.name
        assert set(d.labels) <= allowed, (d.name, d.labels)
        if d.type == "counter":
            assert d.name.endswith("_total"), d.name
        if d.type == "histogram":
            assert d.name.endswith("_seconds"), d.name
        assert d.help


def test_build_info_names_the_running_version() -> None:
    import platform

    from controlplane.version import __version__

    m = Metrics()
    text = render(m).decode()
    assert f'turnout_build_info{{python="{platform.python_version()}",version="{__version__}"}} 1.0' in text
    assert __version__ != "0+unknown"  # read from the installed package's metadata
