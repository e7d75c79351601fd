"""The ranked availability table: a versioned, immutable snapshot of every route's ranking.

Readers (data plane, status API, metrics) read the current snapshot without locks: the publisher swaps
one reference. The version changes only when an order or a state changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from controlplane.domain import State
from controlplane.reasons import closed_reason
from controlplane.window import Figures

__all__ = ["TableEntry", "RouteRanking", "Table", "CurrentFigures"]


def _closed_reason(e: TableEntry) -> bool:
    # A closed target's reason is made of its figures; any other reason (excluded, metrics_only) stays.
    return e.state is State.CLOSED and e.excluded_by is None and e.reason.startswith("closed:")


@dataclass(frozen=True, slots=True)
class CurrentFigures:
    """One target's window figures as of now (the health model's `figures_now()`), to lay over a table entry."""

    figures: Figures
    headroom: float | None  # None for a target that is not admissible: no capacity claim for what is not served


@dataclass(frozen=True, slots=True)
class TableEntry:
    target: str  # provider/model
    provider: str
    model: str
    state: State
    admissible: bool  # may the data plane send traffic to it now (policy + state)
    rank: int | None  # 1-based among admissible targets; None when not admissible
    score: float | None
    reason: str  # short, human: "open: 7×server_error (503) in 60 s, since 12:01:05, retry at 12:01:35"
    excluded_by: str | None = None  # policy that excludes it, e.g. "deny_jurisdictions: cn"
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    error_rate: float | None = None
    headroom: float | None = None
    context_window: int | None = None
    adapter: str = "openai"
    half_open_share: float = 0.0  # share of traffic while half_open
    # Where each figure comes from ("live" | "completion" for latency and TTFT, "serving" | "cheap" for the
    # error rate; None when unknown) and how many calls of the window it is over (controlplane/window.py).
    latency_source: str | None = None
    latency_samples: int = 0
    ttft_source: str | None = None
    ttft_samples: int = 0
    error_source: str | None = None
    error_samples: int = 0

    def with_figures(self, now: CurrentFigures) -> TableEntry:
        """The same entry (state, rank, score, reason) with the window's figures of now."""
        f = now.figures
        return replace(
            self,
            latency_p50_s=f.latency_p50_s,
            latency_p95_s=f.latency_p95_s,
            ttft_p50_s=f.ttft_p50_s,
            ttft_p95_s=f.ttft_p95_s,
            error_rate=f.error_rate,
            headroom=now.headroom if self.admissible else None,
            reason=closed_reason(f.latency_p50_s, f.error_rate) if _closed_reason(self) else self.reason,
            latency_source=f.latency_source,
            latency_samples=f.latency_samples,
            ttft_source=f.ttft_source,
            ttft_samples=f.ttft_samples,
            error_source=f.error_source,
            error_samples=f.error_samples,
        )


@dataclass(frozen=True, slots=True)
class RouteRanking:
    route: str
    entries: tuple[TableEntry, ...]  # admissible first in rank order, then the rest with reasons
    panic: bool = False  # fewer than the panic threshold admissible: ranked least-bad

    @property
    def primary(self) -> TableEntry | None:
        return next((e for e in self.entries if e.admissible), None)

    @property
    def admissible(self) -> tuple[TableEntry, ...]:
        return tuple(e for e in self.entries if e.admissible)


@dataclass(frozen=True, slots=True)
class Table:
    version: int
    published_at: datetime
    routes: dict[str, RouteRanking] = field(default_factory=dict)
    # every configured target, also those in no route (explicit provider/model requests)
    targets: dict[str, TableEntry] = field(default_factory=dict)
    config_hash: str = ""

    def with_figures(self, figures: Mapping[str, CurrentFigures]) -> Table:
        """This version's order and states with the figures of now: error rates and latencies move between
        versions while the order does not (status API and page). Entries without figures stay as published."""

        def e(x: TableEntry) -> TableEntry:
            f = figures.get(x.target)
            return x.with_figures(f) if f is not None else x

        return replace(
            self,
            routes={n: RouteRanking(r.route, tuple(e(x) for x in r.entries), r.panic) for n, r in self.routes.items()},
            targets={k: e(x) for k, x in self.targets.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        def entry(e: TableEntry) -> dict[str, Any]:
            d = asdict(e)
            d["state"] = str(e.state)
            return d

        return {
            "version": self.version,
            "published_at": self.published_at.isoformat().replace("+00:00", "Z"),
            "config_hash": self.config_hash,
            "routes": {
                name: {
                    "route": name,
                    "panic": r.panic,
                    "primary": r.primary.target if r.primary else None,
                    "entries": [entry(e) for e in r.entries],
                }
                for name, r in self.routes.items()
            },
            "targets": {k: entry(e) for k, e in self.targets.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Table:
        def entry(x: dict[str, Any]) -> TableEntry:
            return TableEntry(**{**x, "state": State(x["state"])})

        return cls(
            version=int(d["version"]),
            published_at=datetime.fromisoformat(str(d["published_at"]).replace("Z", "+00:00")),
            config_hash=d.get("config_hash", ""),
            routes={
                name: RouteRanking(
                    route=name, entries=tuple(entry(e) for e in r["entries"]), panic=bool(r.get("panic"))
                )
                for name, r in d.get("routes", {}).items()
            },
            targets={k: entry(e) for k, e in d.get("targets", {}).items()},
        )
