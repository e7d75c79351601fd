"""What the demo shows: a rich live layout on a terminal (ranked table, event feed, client counters, story
line), plain progress lines otherwise (CI, `make demo > log`), and the final summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.console import Console, Group, RenderableType
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.table import Table as RichTable
from rich.text import Text

from controlplane.commands.status_cmd import event_line, table_renderable
from controlplane.demo.traffic import ClientStats, percentile
from controlplane.events import Event

__all__ = ["Snapshot", "FaultResult", "Summary", "View", "LiveView", "PlainView", "summary_renderable", "fmt_s"]


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


@dataclass
class Snapshot:
    """Everything a view needs at one instant."""

    elapsed: float
    total: float
    headline: str
    table: dict[str, Any]
    stats: dict[str, ClientStats]
    overall: ClientStats


@dataclass(frozen=True)
class FaultResult:
    headline: str
    at: float  # seconds into the story
    reaction: str  # what Turnout did, in words
    seconds_to_failover: float | None
    in_request_failovers: int


@dataclass
class Summary:
    overall: ClientStats
    faults: list[FaultResult]
    event_counts: dict[str, int]
    webhooks: list[tuple[str, str, bool]]  # (type, subject, signature verified)
    urls: dict[str, str]
    passed: bool
    problems: list[str] = field(default_factory=list)


class View(Protocol):
    def __enter__(self) -> View: ...
    def __exit__(self, *exc: object) -> None: ...
    def chapter(self, elapsed: float, headline: str) -> None: ...
    def event(self, elapsed: float, event: Event) -> None: ...
    def update(self, snap: Snapshot) -> None: ...


def _counters(snap: Snapshot) -> RichTable:
    t = RichTable(title="clients (openai SDK → Turnout data plane)", title_justify="left", expand=True)
    for col in ("route", "requests", "errors", "failovers", "p50", "p95"):
        t.add_column(col, justify="left" if col == "route" else "right")
    rows = [*snap.stats.items(), ("all", snap.overall)]
    for name, s in rows:
        t.add_row(
            name,
            str(s.requests),
            Text(str(s.errors), style="bold red" if s.errors else "green"),
            str(s.failovers),
            fmt_s(s.p50),
            fmt_s(s.p95),
            style="bold" if name == "all" else "",
        )
    return t


class LiveView:
    """The terminal dashboard (rich Live), refreshed by `update`."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.events: list[Text] = []
        self.headline = "warm-up: steady traffic on every route"
        self._live = Live(console=console, auto_refresh=False, screen=False, transient=False)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def chapter(self, elapsed: float, headline: str) -> None:
        self.headline = headline
        self.events.append(Text.assemble((f"{elapsed:5.1f}s ", "dim"), ("▶ " + headline, "bold cyan")))

    def event(self, elapsed: float, event: Event) -> None:
        self.events.append(Text.assemble((f"{elapsed:5.1f}s ", "dim"), event_line(event.to_dict(), with_time=False)))

    def update(self, snap: Snapshot) -> None:
        layout = Layout()
        progress = min(1.0, snap.elapsed / snap.total) if snap.total else 1.0
        bar = "█" * int(progress * 30) + "░" * (30 - int(progress * 30))
        head = Text.assemble(
            ("Turnout demo ", "bold"), (f"{bar} {snap.elapsed:4.0f}/{snap.total:.0f}s  ", "cyan"), snap.headline
        )
        height = max(12, self.console.size.height - 14)
        feed = (
            Group(*self.events[-(height - 2) :]) if self.events else Text("waiting for the first event…", style="dim")
        )
        layout.split_column(
            Layout(Panel(head), size=3),
            Layout(name="main"),
            Layout(_counters(snap), size=len(snap.stats) + 6),
        )
        layout["main"].split_row(
            Layout(
                Panel(
                    table_renderable(snap.table, width=self.console.width * 3 // 5 - 4),
                    title="ranked table (GET /api/v1/table)",
                ),
                ratio=3,
            ),
            Layout(Panel(feed, title="events"), ratio=2),
        )
        self._live.update(layout, refresh=True)


class PlainView:
    """Plain progress lines for logs: chapters, events, and a counter line every `every` seconds of story."""

    def __init__(self, console: Console, every: float = 10.0) -> None:
        self.console, self.every, self._next = console, every, every

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _print(self, elapsed: float, text: str) -> None:
        self.console.print(f"[{elapsed:6.1f}s] {text}", markup=False, highlight=False, soft_wrap=True)

    def chapter(self, elapsed: float, headline: str) -> None:
        self._print(elapsed, f"STORY  {headline}")

    def event(self, elapsed: float, event: Event) -> None:
        self._print(elapsed, f"EVENT  {event_line(event.to_dict(), with_time=False).plain}")

    def update(self, snap: Snapshot) -> None:
        if snap.elapsed < self._next:
            return
        self._next = snap.elapsed + self.every
        o = snap.overall
        primaries = ", ".join(f"{n}→{r.get('primary') or 'none'}" for n, r in snap.table.get("routes", {}).items())
        self._print(
            snap.elapsed,
            f"CLIENT {o.requests} requests, {o.errors} errors, {o.failovers} failovers, "
            f"p50 {fmt_s(o.p50)}, p95 {fmt_s(o.p95)}; primaries: {primaries}",
        )


def summary_renderable(s: Summary) -> RenderableType:
    """The end-of-story report: failed requests, failover timings, webhooks, where to look next."""
    o = s.overall
    verdict = Text("PASS" if s.passed else "FAIL", style="bold green" if s.passed else "bold red")
    parts: list[RenderableType] = [
        Text.assemble(("Summary ", "bold"), verdict),
        Text.assemble(
            "client requests: ",
            (str(o.requests), "bold"),
            "  failed: ",
            (str(o.errors), "bold green" if o.errors == 0 else "bold red"),
            " (goal: zero)",
            f"  failed over inside the request: {o.failovers}",
            f"  latency p50 {fmt_s(percentile_all(o, 0.5))}, p95 {fmt_s(percentile_all(o, 0.95))}",
        ),
    ]
    parts.append(Text("each fault and Turnout's answer:", style="bold"))
    for f in s.faults:
        took = (
            f"after {fmt_s(f.seconds_to_failover)}" if f.seconds_to_failover is not None else "no table change needed"
        )
        parts.append(Text.assemble(f"  {f.at:5.1f}s  ", (f.headline, "cyan")))
        parts.append(
            Text(f"          → {f.reaction}; {took}; {f.in_request_failovers} requests failed over inside the request")
        )
    counts = ", ".join(f"{k} ×{v}" for k, v in sorted(s.event_counts.items())) or "none"
    parts.append(Text(f"events: {counts}"))
    verified = sum(1 for _, _, ok in s.webhooks if ok)
    hooks: dict[str, int] = {}
    for t, _, _ in s.webhooks:
        hooks[t] = hooks.get(t, 0) + 1
    parts.append(
        Text(
            f"webhooks received by the local receiver: {len(s.webhooks)} ({verified} with a verified signature): "
            + (", ".join(f"{k} ×{v}" for k, v in sorted(hooks.items())) or "none")
        )
    )
    parts.append(Text("where to look next (these stay up with `turnout demo --forever`):", style="bold"))
    parts.extend(Text(f"  {k:<30} {v}") for k, v in s.urls.items())
    for p in s.problems:
        parts.append(Text(f"problem: {p}", style="red"))
    return Group(*parts)


def percentile_all(stats: ClientStats, q: float) -> float | None:
    return percentile(stats.all_latencies, q)
