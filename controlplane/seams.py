"""The seams between Turnout's parts: small Protocols, each naming only what its reader uses.

Each role (`turnout serve --role all|control|data`, controlplane/commands/serve_cmd.py) composes its parts once
at start-up and hands every reader the object that meets the reader's Protocol here:

- `--role all` (and `data` without `--control-url`): one `ControlPlane` (controlplane/control_plane.py) meets
  them all for its own process.
- `--role control` on PostgreSQL: a `ControlReplica` (controlplane/scaleout/control_replica.py). Its readers
  hold stable handles for the process's life: one table publisher (fed from the store while following, from
  the leader's publisher while leading), one store, and methods that hand observations and operator actions to
  the leader's pipeline while this replica leads and refuse (or drop) them while it follows. The leader's parts
  are built on election and torn down on demotion inside the replica; nothing a reader holds is swapped.
- `--role data --control-url …`: a `DataReplica` (dataplane/replica.py) meets `DataPlaneDeps`.

Members are read-only properties: a reader never sets them, and `config` is read per request because a reload
replaces it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from controlplane.clock import Clock
from controlplane.config import Config
from controlplane.domain import Observation
from controlplane.events import Event, EventBus
from controlplane.metrics import Metrics
from controlplane.table import CurrentFigures, Table

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from controlplane.decisions import Decision
    from controlplane.scaleout.leader import LeaderInfo
    from controlplane.store import Store

__all__ = [
    "TableSource",
    "ObservationSink",
    "HealthDetail",
    "Operator",
    "Leadership",
    "ObservationArchive",
    "ControlApiDeps",
    "StatusPageDeps",
    "StatusPageStore",
    "ReplicationDeps",
    "ControlNode",
    "DataPlaneDeps",
]


class TableSource(Protocol):
    """The published routing table: one reference, read without a lock."""

    def current(self) -> Table: ...

    async def wait_newer(self, version: int, timeout: float) -> Table | None:
        """Return a table with version > `version` as soon as one exists; None at the deadline."""
        ...


class ObservationSink(Protocol):
    def submit(self, obs: Observation) -> None:
        """Hand one observation to the pipeline (breaker → ranker → table, and the store). Never blocks."""
        ...


class HealthDetail(Protocol):
    """What the status API shows about one target beyond its table entry (breaker state, window counts)."""

    def target_detail(self, target: str) -> dict[str, Any]: ...

    def figures_now(self) -> Mapping[str, CurrentFigures]:
        """Each target's window figures as of now, laid over the published table by readers (empty when this
        process observes nothing itself, e.g. a follower's view: readers then show the published figures)."""
        ...


class Operator(Protocol):
    """Operator actions: drains (audited as events, durable) and config reloads."""

    async def drain(
        self,
        *,
        target: str | None = None,
        provider: str | None = None,
        reason: str,
        until: datetime | None = None,
        actor: str,
    ) -> object: ...

    async def undrain(
        self, *, target: str | None = None, provider: str | None = None, actor: str, reason: str = ""
    ) -> object: ...

    async def reload_config(self, *, actor: str = "system") -> Config:
        """Re-read the config file and apply it; an invalid file raises ConfigError and the old one stays."""
        ...


class Leadership(Protocol):
    """Who leads among control replicas (controlplane/scaleout/leader.py), as the replication API asks it."""

    @property
    def is_leader(self) -> bool: ...

    async def current(self) -> LeaderInfo | None: ...


class ObservationArchive(Protocol):
    """Where observations too old for the breakers go (history only), and the engine decisions are written to."""

    @property
    def engine(self) -> Engine | None: ...

    def add_observations(self, obs: list[Observation]) -> int: ...


class ControlApiDeps(Operator, Protocol):
    """What the status API, webhook management and /readyz read (controlplane/api/routes.py)."""

    @property
    def config(self) -> Config: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def bus(self) -> EventBus: ...

    @property
    def store(self) -> Store: ...

    @property
    def table_source(self) -> TableSource: ...

    @property
    def health(self) -> HealthDetail | None: ...

    def readiness_checks(self) -> Mapping[str, bool]:
        """This process's own readiness checks beyond "store reachable" and "table loaded"."""
        ...


class StatusPageDeps(Protocol):
    """What the HTML status page reads (controlplane/statuspage.py)."""

    @property
    def config(self) -> Config: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def bus(self) -> EventBus: ...

    @property
    def store(self) -> StatusPageStore | None: ...

    @property
    def table_source(self) -> TableSource: ...

    @property
    def health(self) -> HealthDetail | None: ...


class StatusPageStore(Protocol):
    """The store reads of the status page: recent events and the uptime rollups' engine."""

    @property
    def engine(self) -> Engine: ...

    def list_events(
        self, after: int | None = None, types: list[str] | None = None, limit: int = 100
    ) -> list[Event]: ...


class ReplicationDeps(Protocol):
    """What the replication API (data replicas' reports, GET /api/v1/leader) reads."""

    @property
    def config(self) -> Config: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def sink(self) -> ObservationSink: ...

    @property
    def store(self) -> ObservationArchive: ...

    @property
    def table_source(self) -> TableSource: ...

    @property
    def leadership(self) -> Leadership | None:
        """None: one process that always leads (SQLite, `--role all`)."""
        ...


class ControlNode(ControlApiDeps, ReplicationDeps, Protocol):
    """Everything the control app mounts (controlplane/api/app.py): a ControlPlane or a ControlReplica."""

    @property
    def store(self) -> Store: ...


class DataPlaneDeps(Protocol):
    """What the data plane reads (dataplane/proxy.py, dataplane/panel/)."""

    @property
    def config(self) -> Config: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def table_source(self) -> TableSource: ...

    @property
    def sink(self) -> ObservationSink: ...

    @property
    def decision_engine(self) -> Engine | None:
        """Where the decision log writes; None when records are forwarded instead (a data replica)."""
        ...

    @property
    def forward_decision(self) -> Callable[[Decision], None] | None:
        """Hands each decision-log record to whoever ships it (a data replica); None with a store."""
        ...
