"""The data plane's per-app state: its dependencies, the pooled upstream connections, the selector, the decision
log, the client-key gate and the accounting every handler shares (plain chat, panel, and the client APIs added on
top)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from adapters.base import Adapter
from controlplane.config import Config
from controlplane.decisions import DecisionLog
from controlplane.seams import DataPlaneDeps
from controlplane.table import Table
from dataplane.attempts import Timeouts, UpstreamAttempt
from dataplane.deadlines import FirstByteDeadlines
from dataplane.ejection import EjectingTable, OutlierDetector
from dataplane.http.messages import AppKey, Response
from dataplane.http.upstream import UpstreamPool
from dataplane.keys import KeyGate, Refusal, openai_refusal
from dataplane.outcomes import Accounting
from dataplane.selection import Candidate, Selector

__all__ = ["DATA_STATE", "DataPlaneState"]


class DataPlaneState:
    """Per-app state: the data plane's dependencies (`rt`, see DataPlaneDeps), the pooled upstream connections,
    the selector, the decision log and the client-key gate."""

    def __init__(
        self,
        deps: DataPlaneDeps,
        adapters: Mapping[str, Adapter] | None,
        rand: Callable[[], float],
        keys: KeyGate | None = None,
    ) -> None:
        self.rt = deps
        cfg = deps.config
        # No gate given: keys are never required unless auth.data.require_key (which then refuses everyone).
        self.keys = keys or KeyGate(None, deps.clock, lambda: deps.config.auth.data)
        self.selector = Selector(cfg, rand)
        self.rand = rand
        self._adapters: dict[str, Adapter] = dict(adapters or {})
        self.pool: UpstreamPool | None = None
        self.decisions: DecisionLog | None = None
        # Local ejection (dataplane/ejection.py): a data replica's table source already applies its own; in the
        # control plane's process the data plane keeps one that lasts until the published table catches up.
        self.ejections: OutlierDetector | None = None
        self._table: EjectingTable | None = None
        self.outcomes = Accounting(deps)  # observations and metrics, plain and panel calls alike
        self.deadlines = FirstByteDeadlines(cfg.dataplane, deps.clock)
        self._apply(cfg)

    def table(self) -> Table:
        """The table this process routes by now: the published one with local ejections applied."""
        t = self._table
        if t is None:  # built on first use: the control plane's publisher exists only once it has started
            src = self.rt.table_source
            if isinstance(src, EjectingTable):
                t = src
            else:
                self.ejections = OutlierDetector.from_config(
                    self.rt.config, self.rt.clock, until_published=True, who="process"
                )
                self.outcomes.local = self.ejections
                t = EjectingTable(src, self.ejections)
            self._table = t
        return t.current()

    def _apply(self, cfg: Config) -> None:
        dp = cfg.dataplane
        self.timeouts = Timeouts(connect=dp.connect_timeout, first_byte=dp.first_byte_timeout, stall=dp.stall_timeout)
        if self.pool is not None:
            self.pool.connect_timeout = dp.connect_timeout
        self.deadlines.configure(dp)
        self.routes = {r.name: r for r in cfg.routes}  # read per request: a dict, not a scan of the config
        self.models_body = orjson.dumps(
            {
                "object": "list",
                "data": [{"id": r.name, "object": "model", "created": 0, "owned_by": "turnout"} for r in cfg.routes],
            }
        )

    def config(self) -> Config:
        cfg = self.rt.config
        if cfg is not self.selector.config:  # reloaded: recompute what depended on the old config
            self.selector.reconfigure(cfg)
            self._apply(cfg)
        return cfg

    def refused(self, refusal: Refusal, shape: Callable[[Refusal], Response] = openai_refusal) -> Response:
        """A client-key refusal, counted, in the shape of the client API that got it (OpenAI's by default)."""
        self.outcomes.key_refused(refusal.kind)
        return shape(refusal)

    def adapter(self, name: str) -> Adapter:
        a = self._adapters.get(name)
        if a is None:
            from adapters.registry import get_adapter  # late: the registry imports every adapter module

            a = self._adapters[name] = get_adapter(name)
        return a

    def attempt(
        self,
        cand: Candidate,
        body: dict[str, Any],
        *,
        stream: bool,
        deadline: float,
        include_usage: bool = True,
        trace_parent: Any = None,
        attempt: int = 1,
        adapter: Adapter | None = None,
    ) -> UpstreamAttempt:
        """One upstream call to `cand` on the pooled connections, bounded by the request's `deadline`; with
        `trace_parent` (the request's span) it gets a child span numbered `attempt` (controlplane/tracing.py).
        `adapter` speaks another endpoint of the candidate's API (a client API's pass-through, embeddings); its
        family adapter (chat) without one."""
        assert self.pool is not None, "the app has not started"
        return UpstreamAttempt(
            self.pool,
            adapter or self.adapter(cand.adapter),
            cand,
            body,
            stream=stream,
            timeouts=self.timeouts,
            clock=self.rt.clock,
            deadline=deadline,
            include_usage=include_usage,
            trace_parent=trace_parent,
            attempt=attempt,
            deadlines=self.deadlines,
        )


DATA_STATE: AppKey[DataPlaneState] = AppKey("turnout_data_plane")
