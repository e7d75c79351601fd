"""The ranked availability table: a versioned, immutable snapshot of every route's ranking.

Readers (data plane, status API, metrics) read the current snapshot without locks: the publisher swaps
one reference. The version changes only when an order or a state changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from controlplane.domain import State

__all__ = ["TableEntry", "RouteRanking", "Table"]


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
