"""The human status page at the control plane's `/`: routes, ranked targets, 90-period uptime bars, recent events.

Server-rendered HTML (Jinja2, autoescaped) that works without JavaScript and refreshes itself with
`<meta http-equiv="refresh">`. It reads the published table (order, states, reasons) with the health window's
figures of now laid over it, the store's uptime and the event log. Severities come from controlplane/severity.py.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jinja2
import markupsafe
from aiohttp import web
from sqlalchemy import case, func, select

from controlplane.config import AuthConfig
from controlplane.domain import ErrorClass, State
from controlplane.events import Event
from controlplane.rows import CLASS_COLUMNS, RollupRow, table_of
from controlplane.seams import StatusPageDeps
from controlplane.severity import Severity, page_severity, route_severity
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
    "uptime_history",
]

log = logging.getLogger(__name__)

PERIODS = 90  # like public status pages: 90 bars, oldest on the left
PERIOD_SECONDS = {"day": 86400.0, "hour": 3600.0}
REFRESH_S = 30
RECENT_EVENTS = 20
# Classes that say nothing about the target (the caller's own mistake); as in controlplane/store.py's uptime.
_NEUTRAL = frozenset({ErrorClass.CLIENT_ERROR})
# Each state has its own colour, and withdrawn in particular must not read as "down for a moment" (open):
# it means the provider removed or refused the model and it will not come back by itself.
STATE_COLOURS: dict[State, str] = {
    State.CLOSED: "#1f8a3b",
    State.HALF_OPEN: "#c98a00",
    State.OPEN: "#c62828",
    State.WITHDRAWN: "#6a1b9a",
    State.DRAINED: "#5f6b7a",
}

# States in which a target serves nothing: the newest uptime bar shows them as they are.
_OUT_NOW = (State.OPEN, State.WITHDRAWN, State.DRAINED)

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("controlplane", "templates"),
    autoescape=True,  # every table reason, route name and event field is text from outside: escape all of it
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _wrappable(text: object) -> markupsafe.Markup:
    """Escaped text with line-break opportunities after `_`, so a long marker such as
    `unsupported_country_region_territory` wraps between its words, never inside one."""
    escaped = str(markupsafe.escape(str(text)))
    return markupsafe.Markup(escaped.replace("_", "_<wbr>"))


_env.filters["wrappable"] = _wrappable


@dataclass(frozen=True, slots=True)
class Bar:
    """One uptime period: `uptime` in 0..1, None when nothing was observed."""

    start: datetime
    uptime: float | None
    # The newest bar carries the target's state now, so it never claims a state the target is not in: a target
    # that is out (open, withdrawn, drained) shows that state's colour whatever the period's share of successes;
    # one that serves again shows the period's trouble at worst as "major" (amber), never as red "down".
    now_state: State | None = None

    @property
    def level(self) -> str:
        """CSS class: the colour bands public status pages use, or the target's current state."""
        if self.now_state in _OUT_NOW:
            return f"now-{self.now_state}"
        if self.uptime is None:
            return "none"
        if self.uptime >= 0.999:
            return "good"
        if self.uptime >= 0.99:
            return "minor"
        if self.uptime >= 0.95 or self.now_state is not None:
            return "major"
        return "bad"

    @property
    def title(self) -> str:
        pct = "no data" if self.uptime is None else f"{self.uptime * 100:.2f}%"
        now = f", {self.now_state} now" if self.now_state is not None else ""
        return f"{self.start:%Y-%m-%d %H:%M} UTC: {pct}{now}"


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
    severity: Severity = Severity.OPERATIONAL

    @property
    def status(self) -> str:
        return str(self.severity)


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
    severity: Severity = Severity.OPERATIONAL

    @property
    def overall(self) -> str:
        return str(self.severity)

    @property
    def headline(self) -> str:
        """The banner's words for `severity`, naming the routes that are down."""
        down = [r.name for r in self.routes if r.severity is Severity.MAJOR]
        if down:
            return (
                f"Route down: {', '.join(down)} has no admissible target"
                if len(down) == 1
                else (f"Routes down: {', '.join(down)} have no admissible target")
            )
        return {
            Severity.PARTIAL: "Partial outage: some targets are out, every route still serves",
            Severity.DEGRADED: "Some targets degraded",
            Severity.MAINTENANCE: "All routes operational (targets drained by an operator)",
        }.get(self.severity, "All routes operational")


def uptime_history(store: Any, now: datetime, period_s: float, periods: int = PERIODS) -> dict[str, tuple[Bar, ...]]:
    """Per target, `periods` bars of uptime (oldest first) from the store's per-minute rollups, in one query.

    Uptime counts as the store's `uptime()` does: ok / (ok + failures); client errors say nothing about a
    target and are left out. A period with no counted observation has no bar value ("no data").
    """
    t = table_of(RollupRow)
    start = now - timedelta(seconds=period_s * periods)
    bounds = [start + timedelta(seconds=period_s * i) for i in range(periods)]
    # A CASE over the period starts works the same on SQLite and PostgreSQL (no epoch arithmetic dialects);
    # grouping happens outside the subquery so PostgreSQL sees one column, not two copies of a parametrised CASE.
    bucket = case(*[(t.c.minute >= bounds[i], i) for i in reversed(range(periods))], else_=-1)
    failing = [t.c[CLASS_COLUMNS[ec]] for ec in ErrorClass if ec is not ErrorClass.OK and ec not in _NEUTRAL]
    inner = (
        select(t.c.target, bucket.label("bucket"), t.c.n_ok.label("ok"), sum(failing[1:], failing[0]).label("failed"))
        .where(t.c.minute >= start.replace(second=0, microsecond=0))
        .subquery()
    )
    q = select(inner.c.target, inner.c.bucket, func.sum(inner.c.ok), func.sum(inner.c.failed)).group_by(
        inner.c.target, inner.c.bucket
    )
    counts: dict[str, dict[int, tuple[int, int]]] = {}
    with store.engine.connect() as conn:
        for target, b, ok, failed in conn.execute(q):
            if b is not None and 0 <= int(b) < periods:
                counts.setdefault(target, {})[int(b)] = (int(ok or 0), int(failed or 0))
    out: dict[str, tuple[Bar, ...]] = {}
    for target, by_bucket in counts.items():
        bars = []
        for i, bound in enumerate(bounds):
            ok, failed = by_bucket.get(i, (0, 0))
            bars.append(Bar(bound, ok / (ok + failed) if ok + failed else None))
        out[target] = tuple(bars)
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
        return TargetRow(e, _with_state_now(bars.get(e.target, empty), e.state))

    routed = {e.target for r in table.routes.values() for e in r.entries}
    routes = tuple(
        RouteView(
            name, r.panic, r.primary.target if r.primary else None, tuple(row(e) for e in r.entries), route_severity(r)
        )
        for name, r in table.routes.items()  # config order: the operator chose it
    )
    others = tuple(row(e) for k, e in sorted(table.targets.items()) if k not in routed)
    recent = tuple(sorted(events, key=lambda ev: (ev.at, ev.id or 0), reverse=True)[:RECENT_EVENTS])
    return StatusView(
        now, table.version, table.published_at, routes, others, recent, period, uptime_note, page_severity(table)
    )


def _with_state_now(bars: tuple[Bar, ...], state: State) -> tuple[Bar, ...]:
    """Mark the newest bar with the target's state now (see `Bar.now_state`)."""
    if not bars:
        return bars
    last = bars[-1]
    return (*bars[:-1], Bar(last.start, last.uptime, state))


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

    def seed(self, store: Any) -> None:
        stored = store.list_events(None, None, RECENT_EVENTS)  # after=None: the newest, in ascending id order
        known = {e.id for e in self.events if e.id is not None}
        fresh = [e for e in stored if e.id is None or e.id not in known]
        self.events = deque([*fresh, *self.events], maxlen=RECENT_EVENTS)
        self.seeded = True


# Bars of day-long periods barely move between two page loads; re-reading 90 days of rollups every refresh
# would cost far more than it shows, so the older bars are cached this long. The newest bar (the last period up
# to now) is read on every load: it is the one that moves during an incident.
_HISTORY_TTL_S = {"day": 300.0, "hour": 30.0}


class _History:
    def __init__(self) -> None:
        self.cached: dict[str, tuple[float, dict[str, tuple[Bar, ...]]]] = {}

    def get(self, store: Any, period: str, now: datetime, mono: float) -> dict[str, tuple[Bar, ...]]:
        period_s = PERIOD_SECONDS[period]
        hit = self.cached.get(period)
        if hit is not None and mono - hit[0] < _HISTORY_TTL_S[period]:
            older = hit[1]
        else:
            older = uptime_history(store, now, period_s)
            self.cached[period] = (mono, older)
        newest = uptime_history(store, now, period_s, periods=1)
        last_start = now - timedelta(seconds=period_s)
        out: dict[str, tuple[Bar, ...]] = {}
        for target in older.keys() | newest.keys():
            bars = older.get(target) or _empty_bars(now, period_s)
            fresh = newest.get(target, (Bar(last_start, None),))[0]
            out[target] = (*bars[:-1], fresh)  # the cached newest bar gives way to the fresh one
        return out


async def _collect(deps: StatusPageDeps, recent: _Recent, history: _History, period: str) -> StatusView:
    table: Table = deps.table_source.current()
    health = deps.health
    if health is not None:  # this version's order with the window's figures of now
        table = table.with_figures(health.figures_now())
    now: datetime = deps.clock.wall()
    mono = deps.clock.monotonic()
    store = deps.store
    bars: dict[str, tuple[Bar, ...]] = {}
    note = ""
    if store is not None:

        def query() -> dict[str, tuple[Bar, ...]]:
            if not recent.seeded:
                recent.seed(store)
            return history.get(store, period, now, mono)

        try:
            bars = await asyncio.to_thread(query)  # blocking DB work stays off the event loop
        except Exception as exc:  # the page must render even when the store is down: say so, don't fail
            log.warning("status page: uptime unavailable: %s", type(exc).__name__)
            note = "uptime history unavailable right now"
    return build_view(table, now=now, bars=bars, events=list(recent.events), period=period, uptime_note=note)


def _credential(request: web.Request) -> bytes | None:
    """The token a caller presents: `Bearer <token>` (scripts) or Basic with the token as password (browsers
    prompt for it, so the page needs no JavaScript even when reads are private)."""
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip().encode()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        return decoded.partition(b":")[2] or None
    return None


def _may_read(request: web.Request, auth: AuthConfig) -> bool:
    """`config.auth.public_read` opens the page; otherwise any configured token (read or admin) does."""
    if auth.public_read:
        return True
    given = _credential(request)
    if given is None:
        return False
    ok = False
    for t in auth.tokens:  # every token is compared (no early exit): timing says nothing about which matched
        ok |= hmac.compare_digest(given, t.token.get_secret_value().encode())
    return ok


def install(app: web.Application, deps: StatusPageDeps) -> None:
    """Mount `GET /` (the status page) on `app`; `?period=hour` shows 90 hours instead of 90 days.

    Reads `deps.table_source.current()`, `deps.store` (rollups, events), `deps.bus` (new events), `deps.clock`
    and `deps.config.auth` (when reads are not public, a configured token is needed, as for the status API).
    """
    recent, history = _Recent(), _History()
    deps.bus.subscribe(recent)

    async def page(request: web.Request) -> web.Response:
        if not _may_read(request, deps.config.auth):
            raise web.HTTPUnauthorized(
                text="this status page needs a token: sign in with any user name and the token as password",
                headers={"WWW-Authenticate": 'Basic realm="Turnout status", charset="UTF-8"'},
            )
        period = request.query.get("period", "day")
        if period not in PERIOD_SECONDS:
            raise web.HTTPBadRequest(text=f"period must be one of {', '.join(PERIOD_SECONDS)}; got {period[:20]!r}")
        html = render_status_page(await _collect(deps, recent, history, period))
        resp = web.Response(text=html, content_type="text/html", charset="utf-8")
        # No script runs on this page; the policy makes sure none ever can, even from an unescaped bug.
        resp.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    app.router.add_get("/", page)
