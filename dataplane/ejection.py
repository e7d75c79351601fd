"""Local ejection: the first withdrawing answer (auth, region_blocked, model_gone, quota_exhausted) or
`breaker.consecutive_failures` failures in a row take a target out of this process's candidates at once, before
the control plane has republished the table (Envoy's outlier detection).

One mechanism for both kinds of data plane:

- a data replica (dataplane/replica.py) keeps its ejections for `breaker.open_duration`, doubling on repeat
  ejections up to `breaker.open_duration_max`: its control plane may be far away, or unreachable;
- a data plane in the control plane's process (`--role all`) keeps an ejection only until the table catches up:
  the first newer table that shows the target inadmissible lifts it (the table keeps it out from then on, and
  brings it back when the breaker says so: half_open after a recheck, not after our own timer). A newer table
  that still shows it admissible does not (the observation may not have reached the breaker yet); the ejection
  then lasts at most its duration.

A route never loses its last admissible target this way (ejecting it would only turn errors into 503s).
`EjectingTable` is the TableSource both read: the published table with the ejections applied (same version).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from controlplane.clock import Clock
from controlplane.config import Config
from controlplane.domain import FAILURE_CLASSES, WITHDRAW_CLASSES, ErrorClass, Observation
from controlplane.seams import TableSource
from controlplane.table import RouteRanking, Table

__all__ = ["OutlierDetector", "EjectingTable"]

log = logging.getLogger("turnout.ejection")


@dataclass(slots=True)
class _Ejection:
    until: float
    count: int  # ejections so far (the next one lasts longer)
    reason: str
    version: int  # the table version current when it was ejected


class OutlierDetector:
    """Consecutive-failure and withdrawing-answer ejection on live outcomes, by this process alone (clock
    injected). `until_published`: lift an ejection as soon as a newer table keeps the target out itself."""

    def __init__(
        self,
        clock: Clock,
        *,
        consecutive: int,
        base: float,
        cap: float,
        until_published: bool = False,
        who: str = "data replica",
    ) -> None:
        self.clock, self.consecutive, self.base, self.cap = clock, consecutive, base, cap
        self.until_published, self.who = until_published, who  # `who` names us in an ejected target's reason
        self._failures: dict[str, int] = {}
        self._ejections: dict[str, _Ejection] = {}
        self._latest_until = 0.0  # when the last ejection ends: before then something may be out
        self.version = 0  # the table version this process reads now (EjectingTable keeps it up to date)

    @classmethod
    def from_config(
        cls, config: Config, clock: Clock, *, until_published: bool = False, who: str = "data replica"
    ) -> OutlierDetector:
        b = config.breaker
        return cls(
            clock,
            consecutive=b.consecutive_failures,
            base=b.open_duration,
            cap=b.open_duration_max,
            until_published=until_published,
            who=who,
        )

    def record(self, obs: Observation) -> None:
        ec = obs.error_class
        if ec is ErrorClass.OK:
            if self._failures:
                self._failures.pop(obs.target, None)
            return
        if ec in WITHDRAW_CLASSES:
            self._eject(obs.target, f"{ec} ({obs.status or '-'})")
        elif ec in FAILURE_CLASSES:
            n = self._failures.get(obs.target, 0) + 1
            self._failures[obs.target] = n
            if n >= self.consecutive:
                self._eject(obs.target, f"{n}×{ec} in a row")

    def _eject(self, target: str, reason: str) -> None:
        now = self.clock.monotonic()
        prev = self._ejections.get(target)
        if prev is not None and prev.until > now:
            return  # already out; failures that were in flight do not extend it
        count = prev.count + 1 if prev is not None else 1
        duration = min(self.base * 2 ** (count - 1), self.cap)
        self._ejections[target] = _Ejection(now + duration, count, reason, self.version)
        self._latest_until = max(self._latest_until, now + duration)
        self._failures.pop(target, None)
        log.warning("ejected %s locally for up to %.0fs: %s", target, duration, reason)

    @property
    def active(self) -> bool:
        """Whether any target may be ejected now (cheap: the hot path asks it on every request)."""
        if not self._latest_until:
            return False
        if self.clock.monotonic() < self._latest_until:
            return True
        self._latest_until = 0.0  # every ejection has ended: back to the one-read fast path
        return False

    def ejected(self) -> dict[str, str]:
        """Targets ejected now → reason."""
        if not self.active:
            return {}
        now = self.clock.monotonic()
        return {t: e.reason for t, e in self._ejections.items() if e.until > now}

    def caught_up(self, table: Table) -> None:
        """`table` is the one read now: with `until_published`, lift each ejection it makes redundant (a newer
        version that shows the target inadmissible). The count stays, so a repeat ejection still lasts longer."""
        self.version = table.version
        if not self.until_published:
            return
        for target, e in self._ejections.items():
            entry = table.targets.get(target)
            if table.version > e.version and entry is not None and not entry.admissible and e.until > 0:
                e.until = 0.0  # expired; `count` is kept for the next ejection
                log.info("local ejection of %s lifted: table v%d keeps it out", target, table.version)
        self._latest_until = max((e.until for e in self._ejections.values()), default=0.0)

    def apply(self, table: Table) -> Table:
        """`table` with locally ejected targets made inadmissible and the rest re-ranked (same version)."""
        out = self.ejected()
        if not out:
            return table
        why = {t: f"ejected by this {self.who}: {r}" for t, r in out.items()}
        routes = {name: _eject_route(r, why) for name, r in table.routes.items()}
        targets = {k: (_ejected_entry(e, why[k]) if k in why and e.admissible else e) for k, e in table.targets.items()}
        return replace(table, routes=routes, targets=targets)


def _ejected_entry(e: Any, reason: str) -> Any:
    return replace(e, admissible=False, rank=None, reason=reason)


def _eject_route(r: RouteRanking, out: dict[str, str]) -> RouteRanking:
    if not any(e.admissible and e.target in out for e in r.entries):
        return r
    if all(e.target in out for e in r.entries if e.admissible):
        return r  # never eject a route's last admissible targets: errors beat a certain 503
    kept = [e for e in r.entries if e.admissible and e.target not in out]
    kept = [replace(e, rank=i) for i, e in enumerate(kept, start=1)]
    rest = [
        _ejected_entry(e, out[e.target]) if e.admissible else e
        for e in r.entries
        if not (e.admissible and e.target not in out)
    ]
    return replace(r, entries=tuple(kept + rest))


class EjectingTable:
    """A TableSource: `source`'s table with the detector's ejections applied (same version), cached per
    (version, ejected set). With nothing ejected it is the published table itself."""

    def __init__(self, source: TableSource, detector: OutlierDetector) -> None:
        self.source, self.detector = source, detector
        self._cache: tuple[int, frozenset[str], Table] | None = None
        self._seen: Table | None = None

    def current(self) -> Table:
        base = self.source.current()
        d = self.detector
        if base is self._seen:
            if not d._latest_until:  # the normal case: the same table, nothing ejected (two attribute reads)
                return base
        else:
            self._seen = base
            d.caught_up(base)
        if not d.active:
            return base
        out = frozenset(d.ejected())
        if not out:
            return base
        c = self._cache
        if c is not None and c[0] == base.version and c[1] == out:
            return c[2]
        table = d.apply(base)
        self._cache = (base.version, out, table)
        return table

    async def wait_newer(self, version: int, timeout: float) -> Table | None:
        got = await self.source.wait_newer(version, timeout)
        return None if got is None else self.current()
