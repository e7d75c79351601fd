"""`turnout demo` end to end at high speed (bounded time), plus the pieces its verdict rests on."""

from __future__ import annotations

import asyncio
import io
import re

import pytest
from rich.console import Console

from controlplane.cli import build_parser
from controlplane.demo import REQUIRED_EVENTS, DemoOptions, run_demo
from controlplane.demo.story import STORY_SECONDS, chapters, scaled, sim_config, turnout_config
from controlplane.demo.traffic import ClientStats, percentile


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 0.95) == 95.0


def test_client_stats_count_failovers_only_for_multi_attempt_requests() -> None:
    s = ClientStats()
    s.record_ok(0.1, "a/x", 1, now=1.0)
    s.record_ok(0.3, "b/y", 2, now=2.0)
    s.record_error("boom")
    assert (s.requests, s.errors, s.failovers, s.failover_times) == (3, 1, 1, [2.0])


def test_story_fits_two_minutes_at_default_speed_and_compresses() -> None:
    assert STORY_SECONDS <= 100  # leaves room for start-up and the summary under 2 minutes
    assert [c.key for c in chapters()] == ["latency", "storm", "withdrawal", "calm"]
    assert scaled(60, 4) == 15 and scaled(1, 1000) == 0.05


def test_demo_config_is_valid_and_compressed_by_speed() -> None:
    providers = [
        {
            "id": p["id"],
            "adapter": p["family"],
            "base_url": "http://127.0.0.1:1/v1",
            "models": [{"name": m["name"]} for m in p["models"]],
        }
        for p in sim_config()["providers"]
    ]
    slow = turnout_config(
        providers, db_url="sqlite:///x.db", data_port=0, control_port=0, speed=1, admin_token="tok-Zq9secret"
    )
    fast = turnout_config(providers, db_url="sqlite:///x.db", data_port=0, control_port=0, speed=4, admin_token="t")
    assert {r.name for r in slow.routes} == {"frontier", "cheap-fast"}
    assert fast.breaker.open_duration == pytest.approx(slow.breaker.open_duration / 4)
    assert "tok-Zq9secret" not in slow.model_dump_json() and "tok-Zq9secret" not in repr(
        slow
    )  # the admin token never serialises in clear


def test_demo_command_rejects_a_bad_speed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--speed", "fast"])
    assert "--speed must be a number" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.slow
async def test_demo_plays_the_story_with_zero_failed_requests_and_exits_0() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False)
    async with asyncio.timeout(90):  # the story takes about 7 s at this speed; never hang the suite
        rc = await run_demo(DemoOptions(speed=12, plain=True), console)
    text = out.getvalue()
    assert rc == 0, text
    assert "Summary PASS" in text
    assert re.search(r"client requests: \d+ +failed: 0 ", text), text
    for event_type in REQUIRED_EVENTS:
        assert re.search(rf"{re.escape(event_type)} ×\d+", text), text
    assert "STORY  export-control directive" in text  # plain progress lines without a terminal
    assert "with a verified signature" in text and not re.search(r"\(0 with a verified signature\)", text)
    assert "/api/v1/table" in text and "/metrics" in text


def test_demo_package_exports_resolve() -> None:
    import controlplane.demo as demo

    assert sorted(demo.__all__) == ["DemoOptions", "REQUIRED_EVENTS", "run_demo"]
    assert all(hasattr(demo, name) for name in demo.__all__)
