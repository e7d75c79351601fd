"""`turnout serve -c FILE [--role control|data|all]`: run the control plane and/or the data plane.

`control` runs probes, health, the pipeline, webhooks and the control app (status API, /metrics, status page);
`data` serves the OpenAI-compatible endpoint; `all` (default) does both in one process. SIGHUP reloads the
config (an invalid file is refused and logged; the old config stays); SIGTERM / SIGINT stop cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from aiohttp import web

from controlplane import tracing
from controlplane.api.app import build_control_app
from controlplane.api.runner import GuardedAppRunner
from controlplane.config import Config, DataAuthConfig
from controlplane.config_loader import load_config
from controlplane.control_plane import ControlPlane
from controlplane.errors import ConfigError, StoreError
from controlplane.keys.store import ring_source
from controlplane.scaleout.control_replica import ControlReplica, lifecycle_for
from controlplane.seams import ControlNode, DataPlaneDeps
from dataplane.http.listener import Listener, start_listener
from dataplane.keys import KeyGate
from dataplane.proxy import build_data_app
from dataplane.replica import DataReplica

__all__ = ["add_parser", "serve", "configure_logging", "exposure_problem", "is_loopback"]

log = logging.getLogger("turnout.serve")
_GC_YOUNG_THRESHOLD = 20_000
_GIL_SWITCH_INTERVAL_S = 0.0005


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the control plane and the data plane")
    p.add_argument("-c", "--config", default="turnout.yaml", help="path to turnout.yaml (default: ./turnout.yaml)")
    p.add_argument(
        "--role",
        choices=("control", "data", "all"),
        default="all",
        help="control: probes, health, API; data: OpenAI-compatible endpoint; all: both (default)",
    )
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument(
        "--control-url",
        action="append",
        default=[],
        metavar="URL",
        help="with --role data: a control replica to follow (repeatable); see docs/scale-out.md",
    )
    p.set_defaults(func=_run)


def configure_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # APScheduler logs every job run at INFO: thousands of lines a minute with many targets.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Malformed requests are logged in one line without their bytes by controlplane.api.runner's listener.


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)  # a ConfigError here exits 2 before anything starts
    configure_logging(args.log_level)
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(
                serve(
                    cfg,
                    args.config,
                    args.role,
                    control_urls=args.control_url,
                    on_ready=tune_interpreter_for_serving,
                )
            )
    except StoreError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:  # e.g. the port is taken
        log.error("cannot start: %s", exc.strerror or exc)
        return 1


def tune_interpreter_for_serving() -> None:
    """Interpreter settings for a long-running server, applied once startup is done (bench/dataplane).

    Everything alive now (config, models, SQLAlchemy metadata, modules) lives as long as the process: frozen, a
    full collection no longer walks it (under data-plane load that was a ~40 ms pause every second or two; now
    about 1 ms). And the requests in flight keep a few thousand young objects alive, which at Python's default
    first threshold (700) started a young collection every few requests that found nothing to free. The GIL
    switch interval is 0.5 ms instead of 5: a background writer thread running Python (the store's batches) held
    the event loop for up to the whole interval (1-connection p99 ~4.5 → ~3 ms).
    """
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    sys.setswitchinterval(_GIL_SWITCH_INTERVAL_S)


async def _site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = GuardedAppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def exposure_problem(cfg: Config, no_keys: bool) -> str | None:
    """Why the data plane must not bind where it is configured to (None: it may). Beyond loopback with no client
    key, anyone who reaches the port could spend every provider key in the config."""
    d, data_auth = cfg.server.data, cfg.auth.data
    if not no_keys or is_loopback(d.host) or data_auth.anonymous or data_auth.require_key:
        return None
    return (
        f"{cfg.source}: server.data.host: {d.host} is not a loopback address and no client key exists, so anyone "
        "who can reach the port could spend every provider key in this file; create one first "
        f"(`turnout keys -c {cfg.source} create --name NAME`), or set auth.data.anonymous: true to serve without keys"
    )


async def _key_gate(data: DataPlaneDeps) -> KeyGate:
    """The data plane's key check: the ring from a control replica (a data replica) or from the store."""

    def settings() -> DataAuthConfig:
        return data.config.auth.data  # read per use: reloads apply

    if isinstance(data, DataReplica):
        gate = KeyGate(data.fetch_ring, data.clock, settings)
    else:
        assert data.decision_engine is not None  # a process with the store
        read, subscribe = ring_source(data.decision_engine, data.clock)
        gate = KeyGate(read, data.clock, settings, subscribe=subscribe)
    await gate.refresh()
    return gate


class _Role(Protocol):
    """What `serve` starts, reloads on SIGHUP and stops: a ControlPlane, a ControlReplica or a DataReplica."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def reload_config(self, *, actor: str = "system") -> Config: ...


def compose(
    cfg: Config, config_path: str | None, role: str, control_urls: Sequence[str] = ()
) -> tuple[_Role, ControlNode | None, DataPlaneDeps | None]:
    """What one role runs: (what starts and stops, what the control app reads, what the data plane reads).

    `all` on PostgreSQL is an elected ControlReplica that also serves the data plane: two `--role all`
    processes on one database would otherwise both probe, write health and deliver webhooks."""
    if control_urls:  # a data-plane replica (docs/scale-out.md): no store, the table comes from control replicas
        replica = DataReplica(cfg, control_urls, config_path=config_path)
        return replica, None, replica
    if role == "control":
        node = lifecycle_for(cfg, config_path=config_path)
        return node, node, None
    if role == "all" and not cfg.database.url.startswith("sqlite"):
        elected = ControlReplica(cfg, config_path=config_path)
        return elected, elected, elected
    plane = ControlPlane(cfg, config_path=config_path, probes=role == "all", webhooks=role == "all")
    return plane, plane if role == "all" else None, plane


async def serve(
    cfg: Config,
    config_path: str | None,
    role: str = "all",
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
    control_urls: Sequence[str] = (),
) -> int:
    """Run until SIGTERM/SIGINT (or `stop` is set). Returns the process exit code.

    Each role composes its parts here, once: `all` one ControlPlane that the control app and the data plane
    both read; `control` a ControlPlane on SQLite or a ControlReplica (one of several elected replicas) on
    PostgreSQL; `data` a DataReplica following `--control-url`s, or without them a ControlPlane that does not
    probe or deliver webhooks."""
    if control_urls and role != "data":
        log.error("--control-url is for data replicas: add --role data (see docs/scale-out.md)")
        return 2
    life, control, data = compose(cfg, config_path, role, control_urls)
    tracing.setup_tracing("turnout")  # off unless the OTEL_* environment variables ask for it
    await life.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        try:
            new = await life.reload_config(actor="sighup")
            log.info("SIGHUP: config reloaded (hash %s)", new.hash)
        except ConfigError as exc:
            log.error("SIGHUP: config refused, keeping the running one: %s", exc)

    def on_hup() -> None:
        task = loop.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    runners: list[web.AppRunner | Listener] = []
    try:
        if control is not None:
            c = cfg.server.control
            runners.append(await _site(build_control_app(control), c.host, c.port))
            log.info("control plane on http://%s:%d", c.host, c.port)
        if data is not None:
            d = cfg.server.data
            gate = await _key_gate(data)
            problem = exposure_problem(cfg, gate.loaded and not gate.any_keys)
            if problem is not None:
                log.error("cannot start: %s", problem)
                return 2
            replica = data if isinstance(data, DataReplica) else None  # a replica has no control app
            app = build_data_app(
                data, serve_metrics=replica is not None, keys=gate, readiness=replica.readiness if replica else None
            )
            runners.append(await start_listener(app, d.host, d.port))
            log.info("data plane on http://%s:%d/v1", d.host, d.port)
        if on_ready is not None:
            on_ready()
        await stop.wait()
        log.info("stopping")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        for task in list(reloads):
            await asyncio.gather(task, return_exceptions=True)
        for r in reversed(runners):
            await r.cleanup()
        await life.stop()
        tracing.shutdown_tracing()  # export the spans still buffered
    return 0
