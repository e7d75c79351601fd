"""The status page: routes, ranked targets in state colours, 90-period uptime bars, recent events, escaped, no JS."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from controlplane import statuspage
from controlplane.clock import FakeClock
from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.domain import ErrorClass, Observation, State
from controlplane.events import Event, EventBus
from controlplane.statuspage import PERIODS, STATE_COLOURS, build_view, render_status_page, uptime_history
from controlplane.store import Store
from controlplane.table import Table
from tests.statuspage.sample import NOW, sample_events, sample_table


def _page(**kw: Any) -> str:
    return render_status_page(build_view(sample_table(), now=NOW, events=sample_events(), **kw))


def test_page_refreshes_itself_and_has_no_script() -> None:
    html = _page()
    assert '<meta http-equiv="refresh" content="30">' in html
    assert "<script" not in html.lower()


def test_every_state_has_its_own_colour_and_withdrawn_rows_use_it() -> None:
    assert len(set(STATE_COLOURS.values())) == len(State)
    html = _page()
    withdrawn = STATE_COLOURS[State.WITHDRAWN]
    assert f".state-withdrawn {{ background: {withdrawn}; }}" in html
    row = re.search(r'<tr class="row-withdrawn" data-target="deepseek/deepseek-chat" data-state="withdrawn">', html)
    assert row is not None
    assert '<span class="state state-withdrawn">withdrawn</span>' in html


def test_targets_appear_in_rank_order_per_route_and_exhausted_route_is_flagged() -> None:
    html = _page()
    frontier = html[html.index('id="route-frontier"') :]
    order = [frontier.index(t) for t in ("openai/gpt-4o", "anthropic/claude-sonnet-4", "deepseek/deepseek-chat")]
    assert order == sorted(order)
    assert 'class="banner major"' in html
    assert html.index('id="route-frontier"') < html.index('id="route-cheap-fast"')  # config order
    cheap = html[html.index('id="route-cheap-fast"') :]
    assert cheap.index('class="tag major"') < cheap.index("</section>")


def test_outside_text_is_escaped() -> None:
    html = _page()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;maintenance&lt;/b&gt;" in html  # a drained target's operator reason


def test_each_target_has_ninety_uptime_bars() -> None:
    html = _page()
    rows = re.findall(r'<div class="bars".*?</div>', html, flags=re.S)
    assert rows and all(r.count('class="bar ') == PERIODS for r in rows)


def _store(tmp_path: Path, clock: FakeClock) -> Store:
    return Store(f"sqlite:///{tmp_path / 'turnout.db'}", clock)


def test_uptime_history_splits_rollups_into_periods_and_ignores_client_errors(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    store = _store(tmp_path, clock)
    try:
        obs = []
        for day, failures in ((0, 0), (1, 1), (3, 9)):
            at = NOW - timedelta(days=day, hours=2)
            obs += [Observation.success("openai/gpt-4o", kind="completion", at=at)] * 9
            obs += [Observation.failure("openai/gpt-4o", ErrorClass.SERVER_ERROR, kind="completion", at=at)] * failures
            obs += [Observation.failure("openai/gpt-4o", ErrorClass.CLIENT_ERROR, kind="live", at=at)] * 5
        obs.append(Observation.success("openai/gpt-4o", kind="completion", at=NOW - timedelta(days=PERIODS + 1)))
        store.add_observations(obs)
        bars = uptime_history(store, NOW, 86400.0)["openai/gpt-4o"]
    finally:
        store.close()
    assert len(bars) == PERIODS
    assert [b.uptime for b in bars[-4:]] == [0.5, None, 0.9, 1.0]  # oldest first; day 2 saw nothing
    assert bars[-4].level == "bad" and bars[-2].level == "bad" and bars[-1].level == "good"
    assert all(b.uptime is None for b in bars[:-4])  # older than 90 days is out of the picture


@dataclass
class _Source:
    table: Table

    def current(self) -> Table:
        return self.table

    async def wait_newer(self, version: int, timeout: float) -> Table | None:
        return self.table if self.table.version > version else None


def _public_config() -> Config:
    return parse_config(
        "providers: [{id: a, adapter: openai, base_url: 'http://127.0.0.1:9/v1', models: [{name: m}]}]\n", env={}
    )


@dataclass
class _Rt:
    table_source: _Source
    store: Any
    bus: EventBus
    clock: FakeClock
    config: Config = field(default_factory=_public_config)
    health: None = None  # no health model here: the page shows the published figures


class _BrokenStore:
    def list_events(self, *a: Any) -> list[Event]:
        raise OSError("database is locked")


async def test_installed_page_shows_stored_and_new_events(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    store = _store(tmp_path, clock)
    store.append_events(sample_events())
    bus = EventBus()
    app = web.Application()
    statuspage.install(app, _Rt(_Source(sample_table()), store, bus, clock))
    try:
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/")
            assert resp.status == 200 and resp.content_type == "text/html"
            assert "script-src" not in resp.headers["Content-Security-Policy"]
            assert "route.exhausted" in await resp.text()
            bus.publish(Event("route.primary_changed", NOW, "frontier", {"reason": "gpt-4o opened"}, id=99))
            assert "gpt-4o opened" in await (await client.get("/?period=hour")).text()
            bad = await client.get("/?period=<x>")
            assert bad.status == 400 and "period must be one of day, hour" in await bad.text()
    finally:
        store.close()


async def test_page_still_renders_when_the_store_fails() -> None:
    app = web.Application()
    statuspage.install(app, _Rt(_Source(sample_table()), _BrokenStore(), EventBus(), FakeClock(NOW)))
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/")
        text = await resp.text()
    assert resp.status == 200
    assert "uptime history unavailable right now" in text and "database is locked" not in text


@pytest.mark.parametrize(
    "uptime, level", [(None, "none"), (1.0, "good"), (0.995, "minor"), (0.96, "major"), (0.5, "bad")]
)
def test_bar_levels(uptime: float | None, level: str) -> None:
    assert statuspage.Bar(NOW, uptime).level == level


async def test_private_reads_need_a_token_by_bearer_or_basic_auth() -> None:
    import base64

    from controlplane.config_loader import parse_config

    cfg = parse_config(
        "providers: [{id: a, adapter: openai, base_url: 'http://127.0.0.1:9/v1', models: [{name: m}]}]\n"
        "auth: {public_read: false, tokens: [{token: s3cret-read, scope: read}]}\n",
        env={},
    )
    app = web.Application()
    statuspage.install(app, _Rt(_Source(sample_table()), None, EventBus(), FakeClock(NOW), cfg))

    def basic(password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"me:{password}".encode()).decode()}

    async with TestClient(TestServer(app)) as client:
        denied = await client.get("/")
        assert denied.status == 401 and denied.headers["WWW-Authenticate"].startswith("Basic ")
        assert (await client.get("/", headers=basic("wrong"))).status == 401
        assert (await client.get("/", headers={"Authorization": "Basic !!notbase64"})).status == 401
        assert (await client.get("/", headers=basic("s3cret-read"))).status == 200
        ok = await client.get("/", headers={"Authorization": "Bearer s3cret-read"})
        assert ok.status == 200 and "s3cret" not in await ok.text()


def test_the_newest_bar_never_claims_a_state_the_target_is_not_in() -> None:
    from controlplane.statuspage import PERIODS, Bar, build_view
    from tests.api.fakes import make_config, make_table

    cfg = make_config(True)
    table = make_table(cfg, 1, {"openai/gpt-4o": State.WITHDRAWN})
    now = table.published_at
    start = now - timedelta(days=PERIODS)
    green = tuple(Bar(start + timedelta(days=i), 1.0) for i in range(PERIODS))
    red = (*green[:-1], Bar(green[-1].start, 0.5))
    view = build_view(table, now=now, bars={"openai/gpt-4o": green, "anthropic/claude-sonnet-4": red})
    rows = {r.entry.target: r for rv in view.routes for r in rv.rows}
    withdrawn, serving = rows["openai/gpt-4o"].bars, rows["anthropic/claude-sonnet-4"].bars
    assert withdrawn[-1].level == "now-withdrawn" and withdrawn[-2].level == "good"  # 100 % today, withdrawn now
    assert "withdrawn now" in withdrawn[-1].title
    assert serving[-1].level == "major" and "closed now" in serving[-1].title  # a bad day, but it serves now
