"""`turnout status` and `turnout events`: the ranked table and the event history in a terminal.

Both read the control plane's status API (`GET /api/v1/table`, `GET /api/v1/events`) over HTTP, so they
work against any running `turnout serve` (or `turnout demo --forever`). `--json` prints the API's own
payloads for scripts; `--watch` / `--follow` keep the view current (the table by long-poll).

Longer than most modules: two commands that share the HTTP reads and the table rendering.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group, JustifyMethod, RenderableType
from rich.live import Live
from rich.table import Table as RichTable
from rich.text import Text

from controlplane.reasons import excluded_reason
from controlplane.severity import Severity, page_severity, route_severity
from controlplane.table import Table

__all__ = [
    "DEFAULT_URL",
    "STATE_STYLES",
    "ApiError",
    "StatusClient",
    "add_parser",
    "table_renderable",
    "event_line",
    "event_summary",
]

DEFAULT_URL = "http://127.0.0.1:8701"
# Colours by breaker state: green works, yellow is on trial, red is broken, magenta is gone, dim is parked.
STATE_STYLES: dict[str, str] = {
    "closed": "green",
    "half_open": "yellow",
    "open": "red",
    "withdrawn": "magenta",
    "drained": "dim",
}
_LONG_POLL_S = 25.0  # below common proxy idle timeouts (30 s+)
_RETRY_S = 2.0  # how long --watch/--follow wait before retrying an unreachable control plane
# Layouts by terminal width: all columns from _WIDE; without score, p95 and TTFT from _NARROW; below that
# the reason moves to its own line under each target, so names, numbers and reasons all stay readable.
_WIDE, _NARROW = 140, 100


class ApiError(Exception):
    """The status API could not be reached or answered with an error; the message says which and where."""


@dataclass(frozen=True)
class _Response:
    status: int
    body: Any  # decoded JSON, or None (304, empty body)


class StatusClient:
    """A tiny synchronous client for the read endpoints of the status API (stdlib only, no session state)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, Any] | None = None, *, timeout: float | None = None) -> _Response:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        req = urllib.request.Request(url, headers={"accept": "application/json"})
        if self._token:
            req.add_header("authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                raw = resp.read()
                return _Response(resp.status, json.loads(raw) if raw else None)
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return _Response(304, None)
            raise ApiError(f"{url}: HTTP {exc.code}: {_error_text(exc)}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(
                f"cannot reach the control plane at {self.base_url} ({reason}); is `turnout serve` running? (--url)"
            ) from exc
        except json.JSONDecodeError as exc:
            raise ApiError(f"{url}: the answer is not JSON ({exc.msg}); is --url the control port?") from exc

    def table(self) -> dict[str, Any]:
        """The current table (`Table.to_dict()` shape) with the window's figures of now."""
        return _expect_table(self._get("/api/v1/table", {"figures": "now"}).body)

    def wait_table(self, after: int, wait: float = _LONG_POLL_S) -> dict[str, Any] | None:
        """Long-poll for a table newer than `after`; None when none appeared before the deadline."""
        r = self._get("/api/v1/table", {"after": after, "wait": f"{wait:g}"}, timeout=wait + self.timeout)
        return None if r.status == 304 or r.body is None else _expect_table(r.body)

    def events(
        self, *, after: int | None = None, type_: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Events in id order (the API's payloads, same as webhooks)."""
        body = self._get("/api/v1/events", {"after": after, "type": type_, "limit": limit}).body
        items = body if isinstance(body, list) else _first_list(body, ("events", "data", "items"))
        return sorted((e for e in items if isinstance(e, dict)), key=lambda e: int(e.get("id") or 0))


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"null")
    except (json.JSONDecodeError, OSError):
        return exc.reason or "error"
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or err)
        return str(err)
    return str(body)


def _expect_table(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or "version" not in body or "routes" not in body:
        raise ApiError("the answer is not a Turnout table (no 'version'/'routes'); is --url the control port?")
    return body


def _first_list(body: Any, keys: Iterable[str]) -> list[Any]:
    if isinstance(body, dict):
        for k in keys:
            if isinstance(body.get(k), list):
                return list(body[k])
    raise ApiError("the events answer has no list of events")


# -- rendering --------------------------------------------------------------------------------------


def _ms(v: Any) -> str:
    return f"{float(v) * 1000:.0f}ms" if isinstance(v, int | float) else "-"


def _pct(v: Any) -> str:
    return f"{float(v) * 100:.0f}%" if isinstance(v, int | float) else "-"


def _state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, "white"))


_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("#", "right"),
    ("target", "left"),
    ("state", "left"),
    ("score", "right"),
    ("p50", "right"),
    ("p95", "right"),
    ("ttft", "right"),
    ("errors", "right"),
    ("headroom", "right"),
    ("reason", "left"),
)
_COMPACT = ("#", "target", "state", "p50", "errors", "headroom", "reason")  # for narrow panels (the demo)


def _layout(width: int | None) -> str:
    if width is None or width >= _WIDE:
        return "full"
    return "compact" if width >= _NARROW else "narrow"


_SEVERITY_STYLES = {
    "operational": "green",
    "maintenance": "dim",
    "degraded": "yellow",
    "partial": "dark_orange",
    "major": "bold red",
}


def _severities(table: dict[str, Any]) -> tuple[Severity, dict[str, Severity]] | None:
    """Page and route severities from controlplane/severity.py (the page and Statuspage export use the same)."""
    try:
        t = Table.from_dict(table)
    except (KeyError, TypeError, ValueError):
        return None  # an answer in an older shape: show the table without severities
    return page_severity(t), {n: route_severity(r) for n, r in t.routes.items()}


def _route_table(
    name: str, route: dict[str, Any], *, layout: str = "full", severity: Severity | None = None
) -> RichTable:
    sev = f"  [{_SEVERITY_STYLES[str(severity)]}]{severity}[/]" if severity is not None else ""
    title = f"route [bold]{name}[/bold]{sev}" + ("  [red]PANIC: ranking least-bad[/red]" if route.get("panic") else "")
    t = RichTable(title=title, title_justify="left", expand=False, pad_edge=False)
    columns = [(c, j) for c, j in _COLUMNS if layout == "full" or c in _COMPACT]
    if layout == "narrow":
        columns = [(c, j) for c, j in columns if c != "reason"]
    entries: list[dict[str, Any]] = list(route.get("entries", []))
    longest = max((len(str(e.get("target", ""))) for e in entries), default=6)
    for col, justify in columns:
        if col == "reason":
            t.add_column(col, justify="left", overflow="fold", ratio=1)
        elif col == "target" and layout == "narrow":  # also holds the reason line: may wrap, never below a name
            t.add_column(col, justify="left", overflow="fold", min_width=longest)
        else:  # never squeeze names and numbers: the reason column gives way
            t.add_column(
                col,
                justify=justify,
                no_wrap=True,
                min_width=longest if col == "target" else None,
            )
    for e in entries:
        state = str(e.get("state", "?"))
        reason = str(e.get("reason") or "")
        if e.get("excluded_by"):
            reason = reason or excluded_reason(str(e["excluded_by"]))  # the reason already names the policy
        score = e.get("score")
        reason_text = Text(reason, style="dim" if state == "closed" else STATE_STYLES.get(state, ""))
        cells: dict[str, Any] = {
            "#": str(e["rank"]) if e.get("rank") is not None else "-",
            "target": Text(str(e.get("target", "?")), style="bold" if e.get("rank") == 1 else ""),
            "state": _state_text(state),
            "score": f"{score:.2f}" if isinstance(score, int | float) else "-",
            "p50": _ms(e.get("latency_p50_s")),
            "p95": _ms(e.get("latency_p95_s")),
            "ttft": _ms(e.get("ttft_p50_s")),
            "errors": _pct(e.get("error_rate")),
            "headroom": _pct(e.get("headroom")),
            "reason": reason_text,
        }
        t.add_row(*(cells[c] for c, _ in columns))
        if layout == "narrow" and reason:
            t.add_row(*(Text.assemble("  ", reason_text) if c == "target" else "" for c, _ in columns))
    return t


def table_renderable(table: dict[str, Any], route: str | None = None, *, width: int | None = None) -> RenderableType:
    """The table as rich renderables: one ranked, state-coloured table per route (or only `route`).

    `width` (columns available) picks the layout: narrower drops secondary columns before names or reasons."""
    routes: dict[str, Any] = table.get("routes", {})
    names = [route] if route else sorted(routes)
    header = Text.assemble(
        ("table ", "bold"),
        (f"v{table.get('version')}", "cyan"),
        f"  published {table.get('published_at', '?')}",
        (f"  config {str(table.get('config_hash', ''))[:12]}", "dim"),
    )
    sev = _severities(table)
    parts: list[RenderableType] = [header]
    if sev is not None:
        overall, per_route = sev
        down = [n for n, s in per_route.items() if s is Severity.MAJOR]
        parts.append(
            Text.assemble(
                ("status ", "bold"),
                (str(overall), _SEVERITY_STYLES[str(overall)]),
                f"  routes down: {', '.join(sorted(down))}" if down else "",
            )
        )
    per = sev[1] if sev is not None else {}
    parts.extend(_route_table(n, routes[n], layout=_layout(width), severity=per.get(n)) for n in names if n in routes)
    if not routes:
        parts.append(Text("no routes configured", style="dim"))
    return Group(*parts)


def event_summary(event: dict[str, Any]) -> str:
    """One short human clause for an event's data: old → new, then the reason and a few scalar details."""
    d = event.get("data") or {}
    bits: list[str] = []
    for a, b in (("old", "new"), ("from", "to"), ("old_primary", "new_primary"), ("previous", "primary")):
        if a in d or b in d:
            bits.append(f"{d.get(a) or '-'} → {d.get(b) or '-'}")
            break
    if d.get("reason"):
        bits.append(str(d["reason"]))
    shown = {"old", "new", "from", "to", "old_primary", "new_primary", "previous", "primary", "reason", "mode"}
    extras = [
        f"{k}={v}"
        for k, v in d.items()
        if k not in shown and isinstance(v, str | int | float) and not isinstance(v, bool)
    ]
    bits.extend(extras[:3])
    return ", ".join(bits)


def event_line(event: dict[str, Any], *, with_time: bool = True) -> Text:
    """One event as a coloured line: time (UTC), type, subject, summary."""
    etype = str(event.get("type", "?"))
    style = "red" if etype.endswith(("withdrawn", "exhausted")) else "yellow" if "changed" in etype else "green"
    at = str(event.get("at", ""))
    at = at[11:19] if len(at) >= 19 else at
    return Text.assemble(
        (f"{at} " if with_time else "", "dim"),
        (f"{etype:<22} ", style),
        (f"{event.get('subject', '')} ", "bold"),
        event_summary(event),
    )


# -- commands ---------------------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("TURNOUT_URL", DEFAULT_URL),
        help=f"control plane base URL (env TURNOUT_URL; default {DEFAULT_URL})",
    )
    common.add_argument(
        "--token", default=None, help="bearer token when reads are not public (default: env TURNOUT_TOKEN)"
    )
    common.add_argument(
        "--json", action="store_true", help="print the API's JSON (one document per line when following)"
    )

    st = sub.add_parser(
        "status", parents=[common], help="the ranked availability table, coloured by state, with reasons"
    )
    st.add_argument("--route", "-r", default=None, help="show only this route")
    st.add_argument(
        "--watch", "-w", action="store_true", help="keep the view current (long-polls for new table versions)"
    )
    st.add_argument("--count", type=int, default=0, help="with --watch: exit after this many new versions (0 = never)")
    st.set_defaults(func=_status)

    ev = sub.add_parser("events", parents=[common], help="what changed and why (state changes, failovers, withdrawals)")
    ev.add_argument("--follow", "-f", action="store_true", help="keep printing new events as they happen")
    ev.add_argument("--type", "-t", dest="type_", default=None, help="only this event type, e.g. route.primary_changed")
    ev.add_argument("--limit", "-n", type=int, default=50, help="how many past events to show first (default 50)")
    ev.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)  # poll period while following
    ev.add_argument("--count", type=int, default=0, help="with --follow: exit after this many new events (0 = never)")
    ev.set_defaults(func=_events)


def _client(args: argparse.Namespace) -> StatusClient:
    return StatusClient(args.url, args.token or os.environ.get("TURNOUT_TOKEN") or None)


def _select(table: dict[str, Any], route: str | None) -> dict[str, Any]:
    if route is None:
        return table
    if route not in table.get("routes", {}):
        known = ", ".join(sorted(table.get("routes", {}))) or "(none)"
        raise ApiError(f"unknown route {route!r}; known: {known}")
    return {**table, "routes": {route: table["routes"][route]}}


def _status(args: argparse.Namespace) -> int:
    console, err = Console(), Console(stderr=True)
    client = _client(args)
    try:
        with err.status(f"asking {client.base_url} for the table…"):
            table = _select(client.table(), args.route)
    except ApiError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 1
    if args.json:
        print(json.dumps(table, separators=(",", ":")) if args.watch else json.dumps(table, indent=2), flush=True)
    if not args.watch:
        if not args.json:
            console.print(table_renderable(table, args.route, width=console.width))
        return 0
    try:
        if args.json or not console.is_terminal:
            _watch_plain(client, table, args, console)
        else:
            with Live(
                table_renderable(table, args.route, width=console.width), console=console, auto_refresh=False
            ) as live:
                _watch_loop(
                    client,
                    table,
                    args,
                    lambda t: live.update(table_renderable(t, args.route, width=console.width), refresh=True),
                    err,
                )
    except KeyboardInterrupt:
        return 0
    return 0
    return 0


def _watch_plain(client: StatusClient, table: dict[str, Any], args: argparse.Namespace, console: Console) -> None:
    def show(t: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps(t, separators=(",", ":")), flush=True)
        else:
            console.print(table_renderable(t, args.route, width=console.width))

    if not args.json:
        show(table)
    _watch_loop(client, table, args, show, Console(stderr=True))


def _watch_loop(
    client: StatusClient,
    table: dict[str, Any],
    args: argparse.Namespace,
    show: Callable[[dict[str, Any]], None],
    err: Console,
) -> None:
    version, seen = int(table["version"]), 0
    while not args.count or seen < args.count:
        try:
            newer = client.wait_table(version)
        except ApiError as exc:
            err.print(f"[yellow]{exc}; retrying in {_RETRY_S:g}s[/yellow]")
            time.sleep(_RETRY_S)  # a user-facing retry pause, not a test wait
            continue
        if newer is not None and int(newer["version"]) > version:
            version, seen = int(newer["version"]), seen + 1
            show(_select(newer, args.route))


def _events(args: argparse.Namespace) -> int:
    console, err = Console(), Console(stderr=True)
    client = _client(args)

    def emit(items: list[dict[str, Any]]) -> None:
        for e in items:
            if args.json:
                print(json.dumps(e, separators=(",", ":")), flush=True)
            else:
                console.print(event_line(e))

    try:
        with err.status(f"asking {client.base_url} for events…"):
            past = client.events(type_=args.type_, limit=args.limit)
    except ApiError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 1
    past = past[-args.limit :] if args.limit > 0 else past
    emit(past)
    if not past and not args.json and not args.follow:
        err.print("[dim]no events yet[/dim]")
    if not args.follow:
        return 0
    # Empty history means nothing of this type exists yet: following from id 0 shows only what is new.
    last = max((int(e.get("id") or 0) for e in past), default=0)
    seen = 0
    try:
        while not args.count or seen < args.count:
            time.sleep(args.interval)  # polling period of the follow loop
            try:
                new = client.events(after=last, type_=args.type_, limit=500)
            except ApiError as exc:
                err.print(f"[yellow]{exc}; retrying[/yellow]")
                continue
            new = [e for e in new if int(e.get("id") or 0) > last]
            if args.count:
                new = new[: args.count - seen]
            seen += len(new)
            emit(new)
            if new:
                last = int(new[-1].get("id") or last)
    except KeyboardInterrupt:
        return 0
    return 0
