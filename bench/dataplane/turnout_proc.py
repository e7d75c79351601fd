"""The Turnout data plane as the bench runs it: one process, uvloop, the real app, a stand-in control loop.

The stand-in (`MiniBreaker`) is the smallest thing that closes the loop from live outcomes to the table the
data plane reads: withdraw on region_blocked / model_gone / auth / quota_exhausted, open after three
consecutive timeouts or connect failures, publish a new table version. It lets the bench show that a withdrawn
or open target receives no live traffic. Run: `python -m bench.dataplane.turnout_proc CONFIG.yaml PORT [--uvicorn]`
(`--uvicorn`: the same app behind uvicorn's httptools protocol instead of Turnout's listener).
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Engine

from controlplane.clock import SystemClock
from controlplane.commands.serve_cmd import tune_interpreter_for_serving
from controlplane.config import Config
from controlplane.config_loader import load_config
from controlplane.decisions import Decision
from controlplane.domain import WITHDRAW_CLASSES, ErrorClass, Observation, State
from controlplane.metrics import Metrics
from controlplane.store import Store
from controlplane.table import RouteRanking, Table, TableEntry
from dataplane.http.listener import start_listener
from dataplane.http.messages import App, Request, Response
from dataplane.proxy import DATA_STATE, build_data_app

__all__ = ["MiniBreaker", "initial_table", "main"]


def initial_table(cfg: Config, version: int = 1) -> Table:
    clock = SystemClock()
    adapters = {p.id: p.adapter for p in cfg.providers}

    def entry(key: str, rank: int) -> TableEntry:
        provider, _, model = key.partition("/")
        return TableEntry(key, provider, model, State.CLOSED, True, rank, 1.0, "closed", adapter=adapters[provider])

    routes = {r.name: RouteRanking(r.name, tuple(entry(t, i + 1) for i, t in enumerate(r.targets))) for r in cfg.routes}
    targets = {t.key: entry(t.key, 1) for t in cfg.targets()}
    return Table(version, clock.wall(), routes, targets)


@dataclass
class MiniBreaker:
    """Table source and observation sink in one: a bench stand-in for breaker → ranker → table."""

    cfg: Config
    table: Table = field(init=False)
    consecutive: dict[str, int] = field(default_factory=dict)
    observed: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.table = initial_table(self.cfg)

    def current(self) -> Table:
        return self.table

    async def wait_newer(self, version: int, timeout: float) -> Table | None:
        return None

    def submit(self, obs: Observation) -> None:
        per = self.observed.setdefault(obs.target, {})
        per[str(obs.error_class)] = per.get(str(obs.error_class), 0) + 1
        if obs.error_class in WITHDRAW_CLASSES:
            self._set(obs.target, State.WITHDRAWN)
        elif obs.error_class in (ErrorClass.TIMEOUT, ErrorClass.CONNECT):
            n = self.consecutive[obs.target] = self.consecutive.get(obs.target, 0) + 1
            if n >= 3:
                self._set(obs.target, State.OPEN)
        else:
            self.consecutive[obs.target] = 0

    def _set(self, target: str, state: State) -> None:
        t = self.table
        if t.targets[target].state is state:
            return

        def fix(e: TableEntry) -> TableEntry:
            return (
                dataclasses.replace(e, state=state, admissible=False, rank=None, reason=str(state))
                if e.target == target
                else e
            )

        routes = {
            n: RouteRanking(n, tuple(sorted((fix(e) for e in r.entries), key=lambda e: not e.admissible)))
            for n, r in t.routes.items()
        }
        self.table = Table(t.version + 1, t.published_at, routes, {k: fix(e) for k, e in t.targets.items()})

    def reset(self) -> None:
        self.table = initial_table(self.cfg, self.table.version + 1)
        self.consecutive.clear()
        self.observed.clear()


@dataclass
class BenchRuntime:
    config: Config
    table_source: MiniBreaker
    sink: MiniBreaker
    metrics: Metrics = field(default_factory=Metrics)
    clock: SystemClock = field(default_factory=SystemClock)
    decision_engine: Engine | None = None  # the decision log writes here, as under `turnout serve`
    forward_decision: Callable[[Decision], None] | None = None


def build(cfg: Config, store: Store | None = None) -> tuple[App, MiniBreaker]:
    mini = MiniBreaker(cfg)
    app = build_data_app(BenchRuntime(cfg, mini, mini, decision_engine=store.engine if store else None))

    async def reset(request: Request) -> Response:
        mini.reset()
        return Response(orjson.dumps({"version": mini.table.version}))

    async def state(request: Request) -> Response:
        log = app[DATA_STATE].decisions
        return Response(
            orjson.dumps(
                {
                    "version": mini.table.version,
                    "observed": mini.observed,
                    "decisions": {"written": log.written if log else 0, "dropped": log.dropped if log else 0},
                    "states": {k: str(e.state) for k, e in mini.table.targets.items()},
                }
            )
        )

    app.add_route("POST", "/_bench/reset", reset)
    app.add_route("GET", "/_bench/state", state)
    return app, mini


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    cfg = load_config(args[0])
    port = int(args[1])
    import uvloop

    uvloop.install()
    # The decision log writes to a real SQLite store, as under `turnout serve`: accounting is part of the cost.
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/decisions.db", SystemClock())
        app, _ = build(cfg, store)

        if "--uvicorn" in args:  # the maintained alternative to the listener (python -m bench listener)
            from bench.dataplane.uvicorn_app import serve

            def ready() -> None:
                tune_interpreter_for_serving()
                print("ready", flush=True)

            asyncio.run(serve(app, "127.0.0.1", port, ready))
            return

        async def run() -> None:
            listener = await start_listener(app, "127.0.0.1", port, backlog=4096)
            tune_interpreter_for_serving()  # as `turnout serve` does once it is up
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)  # the bench's terminate()
            print("ready", flush=True)
            await stop.wait()
            await listener.cleanup(1.0)

        asyncio.run(run())


if __name__ == "__main__":
    main()
