"""The human status page at the control plane's `/`: routes, ranked targets, 90-period uptime bars, recent events.

Server-rendered HTML (Jinja2, autoescaped) that works without JavaScript and refreshes itself with
`<meta http-equiv="refresh">`. It reads only the published table, the store's uptime and the event log.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import jinja2
from aiohttp import web

from controlplane.domain import State
from controlplane.events import Event
from controlplane.table import Table, TableEntry

__all__ = [
    "PERIODS",
    "PERIOD_SECONDS",
    "STATE_COLOURS",
    "Bar",
    "TargetRow",
    "RouteView",
    "StatusView",
    "install",
    "render_status_page",
    "build_view",
    "uptime_bars",
]

log = logging.getLogger(__name__)

PERIODS = 90  # like public status pages: 90 bars, oldest on the left
PERIOD_SECONDS = {"day": 86400.0, "hour": 3600.0}
REFRESH_S = 30
RECENT_EVENTS = 20
# Each state has its own colour, and withdrawn in particular must not read as "down for a moment" (open):
# it means the provider removed or refused the model and it will not come back by itself.
STATE_COLOURS: dict[State, str] = {
    State.CLOSED: "#1f8a3b",
    State.HALF_OPEN: "#c98a00",
    State.OPEN: "#c62828",
    State.WITHDRAWN: "#6a1b9a",
    State.DRAINED: "#5f6b7a",
}

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("controlplane", "templates"),
    autoescape=True,  # every table reason, route name and event field is text from outside: escape all of it
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class Bar:
    """One uptime period: `uptime` in 0..1, None when nothing was observed."""

    start: datetime
    uptime: float | None

    @property
    def level(self) -> str:
        """CSS class: the colour bands public status pages use."""
        if self.uptime is None:
            return "none"
        if self.uptime >= 0.999:
            return "good"
        if self.uptime >= 0.99:
            return "minor"
        if self.uptime >= 0.95:
            return "major"
        return "bad"

    @property
    def title(self) -> str:
        pct = "no data" if self.uptime is None else f"{self.uptime * 100:.2f}%"
        return f"{self.start:%Y-%m-%d %H:%M} UTC: {pct}"


@dataclass(frozen=True, slots=True)
class TargetRow:
    """One target as the page shows it (in a route, or on its own)."""

    entry: TableEntry
    bars: tuple[Bar, ...]

    @property
    def state(self) -> str:
        return str(self.entry.state)

    @property
    def uptime_pct(self) -> str:
        seen = [b.uptime for b in self.bars if b.uptime is not None]
        return f"{sum(seen) / len(seen) * 100:.2f}%" if seen else "—"


@dataclass(frozen=True, slots=True)
class RouteView:
    name: str
    panic: bool
    primary: str | None
    rows: tuple[TargetRow, ...]

    @property
    def status(self) -> str:
        if self.primary is None:
            return "exhausted"
        return "degraded" if self.panic or any(r.entry.state is not State.CLOSED for r in self.rows) else "operational"


@dataclass(frozen=True, slots=True)
class StatusView:
    """Everything the template needs; built by `build_view`, rendered by `render_status_page`."""

    now: datetime
    version: int
    published_at: datetime
    routes: tuple[RouteView, ...]
    others: tuple[TargetRow, ...]  # configured targets in no route
    events: tuple[Event, ...]  # newest first
    period: str = "day"
    uptime_note: str = ""

    @property
    def overall(self) -> str:
        statuses = {r.status for r in self.routes}
        if "exhausted" in statuses:
            return "exhausted"
        return "degraded" if "degraded" in statuses else "operational"


class _Store(Protocol):
    def uptime(self, window_s: float, target: str | None = None, provider: str | None = None) -> list[dict[str, Any]]: ...

    def list_events(self, after: int | None, types: list[str] | None, limit: int) -> Sequence[Event]: ...


def _count(row: Mapping[str, Any], *names: str) -> float | None:
    for n in names:
        v = row.get(n)
        if isinstance(v, int | float):
            return float(v)
    return None


def uptime_bars(
    windows: Sequence[Iterable[Mapping[str, Any]]], targets: Iterable[str], now: datetime, period_s: float
) -> dict[str, tuple[Bar, ...]]:
    """Per-period bars from cumulative trailing windows: `windows[i]` = `store.uptime((i+1) × period)` rows.

    A period's counts are the difference of two nested windows (rows carry `ok` and `total` counts), so one
    uptime query per period serves every target. Rows without counts give no bar (shown as "no data").
    """
    cum: dict[str, list[tuple[float, float] | None]] = {t: [] for t in targets}
    for window in windows:
        rows = list(window)
        seen: dict[str, tuple[float, float]] = {}
        for row in rows:
            ok, total = _count(row, "ok", "ok_count", "successes"), _count(row, "total", "count", "calls")
            if isinstance(row.get("target"), str) and ok is not None and total is not None:
                seen[row["target"]] = (ok, total)
        usable = bool(seen) or not rows  # no rows: nothing observed; rows without counts: nothing we can split
        for t, series in cum.items():
            series.append(seen.get(t, (0.0, 0.0)) if usable else None)
    out: dict[str, tuple[Bar, ...]] = {}
    for t, series in cum.items():
        bars = []
        for i, counts in enumerate(series):  # i = 0 is the newest period
            prev = series[i - 1] if i > 0 else (0.0, 0.0)
            up: float | None = None
            if counts is not None and prev is not None:
                ok, total = counts[0] - prev[0], counts[1] - prev[1]
                up = max(0.0, min(1.0, ok / total)) if total > 0 else None
            bars.append(Bar(now - timedelta(seconds=period_s * (i + 1)), up))
        bars += [Bar(now - timedelta(seconds=period_s * (j + 1)), None) for j in range(len(bars), PERIODS)]
        out[t] = tuple(reversed(bars))  # oldest on the left
    return out


def _empty_bars(now: datetime, period_s: float) -> tuple[Bar, ...]:
    return tuple(Bar(now - timedelta(seconds=period_s * (PERIODS - i)), None) for i in range(PERIODS))


def build_view(
    table: Table,
    *,
    now: datetime,
    bars: Mapping[str, tuple[Bar, ...]] | None = None,
    events: Iterable[Event] = (),
    period: str = "day",
    uptime_note: str = "",
) -> StatusView:
    """Assemble the page's view from a table, per-target bars and recent events (pure; tests call it)."""
    period_s = PERIOD_SECONDS[period]
    bars = bars or {}
    empty = _empty_bars(now, period_s)

    def row(e: TableEntry) -> TargetRow:
        return TargetRow(e, bars.get(e.target, empty))

    routed = {e.target for r in table.routes.values() for e in r.entries}
    routes = tuple(
        RouteView(name, r.panic, r.primary.target if r.primary else None, tuple(row(e) for e in r.entries))
        for name, r in table.routes.items()  # config order: the operator chose it
    )
    others = tuple(row(e) for k, e in sorted(table.targets.items()) if k not in routed)
    recent = tuple(sorted(events, key=lambda ev: (ev.at, ev.id or 0), reverse=True)[:RECENT_EVENTS])
    return StatusView(now, table.version, table.published_at, routes, others, recent, period, uptime_note)


def render_status_page(view: StatusView) -> str:
    """The page's HTML."""
    return _env.get_template("status.html").render(
        view=view, colours={str(k): v for k, v in STATE_COLOURS.items()}, refresh_s=REFRESH_S, periods=PERIODS
    )


class _Recent:
    """The newest events: seeded once from the store, then kept current from the bus (no query per page view)."""

    def __init__(self) -> None:
        self.events: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self.seeded = False

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def seed(self, store: _Store) -> None:
        # The store lists in id order from `after`; a generous limit then the tail gives the newest ones.
        stored = list(store.list_events(None, None, 100_000))[-RECENT_EVENTS:]
        known = {e.id for e in self.events if e.id is not None}
        fresh = [e for e in stored if e.id is None or e.id not in known]
        self.events = deque([*fresh, *self.events], maxlen=RECENT_EVENTS)
        self.seeded = True


async def _collect(rt: Any, recent: _Recent, period: str) -> StatusView:
    table: Table = rt.table_source.current()
    now: datetime = rt.clock.wall() if getattr(rt, "clock", None) is not None else table.published_at
    period_s = PERIOD_SECONDS[period]
    store = getattr(rt, "store", None)
    bars: dict[str, tuple[Bar, ...]] = {}
    note = ""
    if store is not None:
        keys = list(table.targets) or sorted({e.target for r in table.routes.values() for e in r.entries})

        def query() -> dict[str, tuple[Bar, ...]]:
            # Blocking DB work runs off the loop; one uptime query per period serves every target.
            windows = [store.uptime(period_s * (i + 1)) for i in range(PERIODS)]
            if not recent.seeded:
                recent.seed(store)
            return uptime_bars(windows, keys, now, period_s)

        try:
            bars = await asyncio.to_thread(query)
        except Exception as exc:  # the page must render even when the store is down: show it, don't fail
            log.warning("status page: uptime unavailable: %s", type(exc).__name__)
            note = "uptime history unavailable right now"
    return build_view(table, now=now, bars=bars, events=list(recent.events), period=period, uptime_note=note)


def install(app: web.Application, rt: Any) -> None:
    """Mount `GET /` (the status page) on `app`; `?period=hour` shows 90 hours instead of 90 days."""
    recent = _Recent()
    bus = getattr(rt, "bus", None)
    if bus is not None:
        bus.subscribe(recent)

    async def page(request: web.Request) -> web.Response:
        period = request.query.get("period", "day")
        if period not in PERIOD_SECONDS:
            raise web.HTTPBadRequest(text=f"period must be one of {', '.join(PERIOD_SECONDS)}; got {period[:20]!r}")
        html = render_status_page(await _collect(rt, recent, period))
        resp = web.Response(text=html, content_type="text/html", charset="utf-8")
        # No script runs on this page; the policy makes sure none ever can, even from an unescaped bug.
        resp.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    app.router.add_get("/", page)
