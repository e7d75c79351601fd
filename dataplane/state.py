"""The data plane's per-app state: its dependencies, the pooled upstream connections, the selector, the decision
log and the accounting every handler shares (plain chat, panel, and the client APIs added on top)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from adapters.base import Adapter
from controlplane.config import Config
from controlplane.decisions import DecisionLog
from controlplane.seams import DataPlaneDeps
from dataplane.attempts import Timeouts, UpstreamAttempt
from dataplane.http.messages import AppKey
from dataplane.http.upstream import UpstreamPool
from dataplane.outcomes import Accounting
from dataplane.selection import Candidate, Selector

__all__ = ["DATA_STATE", "DataPlaneState"]


class DataPlaneState:
    """Per-app state: the data plane's dependencies (`rt`, see DataPlaneDeps), the pooled upstream connections,
    the selector and the decision log."""

    def __init__(self, deps: DataPlaneDeps, adapters: Mapping[str, Adapter] | None, rand: Callable[[], float]) -> None:
        self.rt = deps
        cfg = deps.config
        self.selector = Selector(cfg, rand)
        self.rand = rand
        self._adapters: dict[str, Adapter] = dict(adapters or {})
        self.pool: UpstreamPool | None = None
        self.decisions: DecisionLog | None = None
        self.outcomes = Accounting(deps)  # observations and metrics, plain and panel calls alike
        self._apply(cfg)

    def _apply(self, cfg: Config) -> None:
        dp = cfg.dataplane
        self.timeouts = Timeouts(connect=dp.connect_timeout, first_byte=dp.first_byte_timeout, stall=dp.stall_timeout)
        if self.pool is not None:
            self.pool.connect_timeout = dp.connect_timeout
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
    ) -> UpstreamAttempt:
        """One upstream call to `cand` on the pooled connections, bounded by the request's `deadline`; with
        `trace_parent` (the request's span) it gets a child span numbered `attempt` (controlplane/tracing.py)."""
        assert self.pool is not None, "the app has not started"
        return UpstreamAttempt(
            self.pool,
            self.adapter(cand.adapter),
            cand,
            body,
            stream=stream,
            timeouts=self.timeouts,
            clock=self.rt.clock,
            deadline=deadline,
            include_usage=include_usage,
            trace_parent=trace_parent,
            attempt=attempt,
        )


DATA_STATE: AppKey[DataPlaneState] = AppKey("turnout_data_plane")
