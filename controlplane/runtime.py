"""The running control plane's parts in one place, handed to API handlers and the data plane.

The foundation work owns the lifecycle (store, scheduler, pipeline, reload); other parts only read:
- `rt.table_source.current()` — the published Table (lock-free read);
  `await rt.table_source.wait_newer(version, timeout)` — long-poll for a newer one;
- `rt.sink.submit(obs)` — the one observation pipe (probes and live traffic); never blocks;
- `rt.store`, `rt.bus`, `rt.config`, `rt.clock`, `rt.metrics`, `rt.health`.
"""

from __future__ import annotations

from typing import Protocol

from controlplane.domain import Observation
from controlplane.table import Table

__all__ = ["TableSource", "ObservationSink"]


class TableSource(Protocol):
    def current(self) -> Table: ...

    async def wait_newer(self, version: int, timeout: float) -> Table | None:
        """Return a table with version > `version` as soon as one exists; None at the deadline."""
        ...


class ObservationSink(Protocol):
    def submit(self, obs: Observation) -> None:
        """Hand one observation to the pipeline (breaker → ranker → table, and the store). Never blocks."""
        ...
