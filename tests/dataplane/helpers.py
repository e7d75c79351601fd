"""Stand-ins for the runtime the data plane reads (config, table source, sink, metrics, clock, store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controlplane.clock import SystemClock
from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.domain import Observation, State
from controlplane.metrics import Metrics
from controlplane.table import RouteRanking, Table, TableEntry

__all__ = ["StaticTables", "ListSink", "Rt", "make_table", "entry"]


class StaticTables:
    """A table source whose table the test swaps by hand."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def current(self) -> Table:
        return self.table

    async def wait_newer(self, version: int, timeout: float) -> Table | None:
        return self.table if self.table.version > version else None


class ListSink:
    def __init__(self) -> None:
        self.observations: list[Observation] = []

    def submit(self, obs: Observation) -> None:
        self.observations.append(obs)

    def classes(self, target: str) -> list[str]:
        return [str(o.error_class) for o in self.observations if o.target == target]


@dataclass
class Rt:
    config: Config
    table_source: StaticTables
    sink: ListSink = field(default_factory=ListSink)
    metrics: Metrics = field(default_factory=Metrics)
    clock: Any = field(default_factory=SystemClock)
    decision_engine: Any = None  # an Engine: the decision log writes there
    forward_decision: Any = None


def entry(
    target: str,
    state: State = State.CLOSED,
    *,
    rank: int | None = 1,
    admissible: bool | None = None,
    adapter: str = "openai",
    **kw: Any,
) -> TableEntry:
    provider, _, model = target.partition("/")
    adm = state in (State.CLOSED, State.HALF_OPEN) if admissible is None else admissible
    return TableEntry(
        target=target,
        provider=provider,
        model=model,
        state=state,
        admissible=adm,
        rank=rank if adm else None,
        score=1.0 if adm else None,
        reason="" if adm else f"{state} (test)",
        adapter=adapter,
        **kw,
    )


def make_table(cfg: Config, version: int = 1, overrides: dict[str, TableEntry] | None = None) -> Table:
    """Every route in its configured order, every target closed, unless overridden (admissible first)."""
    overrides = overrides or {}
    adapters = {p.id: p.adapter for p in cfg.providers}
    routes = {}
    for r in cfg.routes:
        es = [
            overrides.get(t) or entry(t, rank=i + 1, adapter=adapters[t.split("/")[0]]) for i, t in enumerate(r.targets)
        ]
        es.sort(key=lambda e: not e.admissible)
        routes[r.name] = RouteRanking(r.name, tuple(es))
    targets = {t.key: overrides.get(t.key) or entry(t.key, adapter=adapters[t.provider]) for t in cfg.targets()}
    return Table(version=version, published_at=datetime(2026, 1, 1, tzinfo=UTC), routes=routes, targets=targets)


def parse(text: str) -> Config:
    return parse_config(text, env={})
