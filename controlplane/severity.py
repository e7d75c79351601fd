"""One severity for routes, providers and the whole page: every reader (status page banner, `turnout status`,
the Statuspage export, metrics) derives it here, so they can never disagree.

A route is `major` (down) when no target serves it by its own state: every entry is out, or the route is in
panic and serves only least-bad (open) targets. It is `partial` when some of its targets are out (open,
withdrawn) but a healthy one serves, `degraded` when one is only on trial (half_open), else `operational`.
A provider is `major` when every one of its targets is out, `partial` when some are. The page is as bad as its
worst route; a provider outage that no route feels raises the page to `partial` at most.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import Literal

from controlplane.domain import State
from controlplane.table import RouteRanking, Table, TableEntry

__all__ = [
    "Severity",
    "state_severity",
    "target_severity",
    "route_severity",
    "provider_severity",
    "page_severity",
    "statuspage_component",
    "statuspage_indicator",
    "COMPONENT_STATUS",
]

ComponentStatus = Literal["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"]
Indicator = Literal["none", "minor", "major", "critical"]


class Severity(IntEnum):
    """Ordered: a larger value is worse. `str()` gives the name readers print."""

    OPERATIONAL = 0
    MAINTENANCE = 1  # drained by an operator
    DEGRADED = 2
    PARTIAL = 3
    MAJOR = 4

    def __str__(self) -> str:
        return self.name.lower()


_OUT = (State.OPEN, State.WITHDRAWN)
_TARGET: dict[State, Severity] = {
    State.CLOSED: Severity.OPERATIONAL,
    State.HALF_OPEN: Severity.DEGRADED,
    State.OPEN: Severity.PARTIAL,
    State.WITHDRAWN: Severity.MAJOR,
    State.DRAINED: Severity.MAINTENANCE,
}
COMPONENT_STATUS: dict[Severity, ComponentStatus] = {
    Severity.OPERATIONAL: "operational",
    Severity.MAINTENANCE: "under_maintenance",
    Severity.DEGRADED: "degraded_performance",
    Severity.PARTIAL: "partial_outage",
    Severity.MAJOR: "major_outage",
}


def state_severity(state: State) -> Severity:
    """One target's state: closed operational, half_open degraded, open partial, withdrawn major, drained
    maintenance."""
    return _TARGET.get(state, Severity.MAJOR)


def target_severity(e: TableEntry) -> Severity:
    return state_severity(e.state)


def _serves(e: TableEntry) -> bool:
    # Admitted by its own state, not by panic (panic admits open targets least-bad).
    return e.admissible and e.state in (State.CLOSED, State.HALF_OPEN)


def route_severity(r: RouteRanking) -> Severity:
    """`major` when nothing serves the route by its own state; else the worst of its usable targets' trouble."""
    considered = [e for e in r.entries if e.excluded_by is None]
    if not any(_serves(e) for e in considered):
        return Severity.MAJOR
    if r.panic or any(e.state in _OUT for e in considered):
        return Severity.PARTIAL
    if any(e.state is State.HALF_OPEN for e in considered):
        return Severity.DEGRADED
    return Severity.OPERATIONAL


def provider_severity(entries: Iterable[TableEntry]) -> Severity:
    """One provider from its targets: all out → major, some out → partial, any on trial → degraded."""
    es = list(entries)
    if not es:
        return Severity.OPERATIONAL
    out = sum(1 for e in es if e.state in _OUT)
    if out == len(es):
        return Severity.MAJOR
    if out:
        return Severity.PARTIAL
    if any(e.state is State.HALF_OPEN for e in es):
        return Severity.DEGRADED
    if all(e.state is State.DRAINED for e in es):
        return Severity.MAINTENANCE
    return Severity.OPERATIONAL


def page_severity(table: Table) -> Severity:
    """The whole page: its worst route; a provider outage no route feels counts as `partial` at most."""
    routes = max((route_severity(r) for r in table.routes.values()), default=Severity.OPERATIONAL)
    providers: dict[str, list[TableEntry]] = {}
    for e in table.targets.values():
        providers.setdefault(e.provider, []).append(e)
    worst_provider = max((provider_severity(es) for es in providers.values()), default=Severity.OPERATIONAL)
    return max(routes, min(worst_provider, Severity.PARTIAL))


def statuspage_component(s: Severity) -> ComponentStatus:
    return COMPONENT_STATUS[s]


def statuspage_indicator(table: Table) -> Indicator:
    """Statuspage's page indicator: critical when every route is down, else from `page_severity`."""
    if table.routes and all(route_severity(r) is Severity.MAJOR for r in table.routes.values()):
        return "critical"
    s = page_severity(table)
    if s is Severity.MAJOR:
        return "major"
    return "minor" if s >= Severity.DEGRADED else "none"
