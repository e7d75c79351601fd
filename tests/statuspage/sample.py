"""A hand-built table with one target in every state (withdrawn included), shared by the metrics,
status page and dashboard tests until they run against the real pipeline."""

from __future__ import annotations

from datetime import UTC, datetime

from controlplane.domain import State
from controlplane.events import Event
from controlplane.table import RouteRanking, Table, TableEntry

__all__ = ["NOW", "entry", "sample_table", "sample_events"]

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def entry(target: str, state: State, rank: int | None, score: float | None, reason: str, **kw: object) -> TableEntry:
    provider, _, model = target.partition("/")
    admissible = state in (State.CLOSED, State.HALF_OPEN) and rank is not None
    return TableEntry(target, provider, model, state, admissible, rank, score, reason, **kw)  # type: ignore[arg-type]


def sample_table(version: int = 7) -> Table:
    a = entry("openai/gpt-4o", State.CLOSED, 1, 0.91, "closed: p50 0.42 s, 0% errors", latency_p50_s=0.42, headroom=0.8)
    b = entry("anthropic/claude-sonnet-4", State.HALF_OPEN, 2, 0.55, "half_open: trial 1/3")
    c = entry(
        "deepseek/deepseek-chat",
        State.WITHDRAWN,
        None,
        None,
        "withdrawn: region_blocked (403 unsupported_country_region_territory) at 12:00:12",
    )
    d = entry("mistral/mistral-large", State.OPEN, None, 0.2, "open: 7×server_error (503) in 60 s")
    e = entry("local/llama", State.DRAINED, None, None, "drained by ops: <b>maintenance</b>")
    frontier = RouteRanking("frontier", (a, b, c, d))
    empty = RouteRanking("cheap-fast", (c,), panic=False)
    return Table(
        version=version,
        published_at=NOW,
        routes={"frontier": frontier, "cheap-fast": empty},
        targets={x.target: x for x in (a, b, c, d, e)},
    )


def sample_events() -> list[Event]:
    return [
        Event(
            "target.withdrawn",
            NOW,
            "deepseek/deepseek-chat",
            {"from": "closed", "to": "withdrawn", "reason": "region_blocked <script>alert(1)</script>"},
            id=1,
        ),
        Event("route.exhausted", NOW, "cheap-fast", {"reason": "no admissible target"}, id=2),
    ]
