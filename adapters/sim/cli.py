"""`turnout sim -c sim.yaml [--admin-port N]`: run the provider simulator on the real clock until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from contextlib import suppress

from rich.console import Console

from adapters.sim.config import SimConfig, load_sim_config
from adapters.sim.simulator import Simulator

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sim", help="run simulated LLM providers with switchable faults (see docs/simulator.md)")
    p.add_argument("-c", "--config", required=True, help="path to sim.yaml (e.g. examples/sim.yaml)")
    p.add_argument(
        "--admin-port",
        type=int,
        default=None,
        help="admin API port (overrides admin_port in the file; 0 = any free port)",
    )
    p.add_argument(
        "--no-timeline", action="store_true", help="do not start the timeline (start it later: POST /timeline/start)"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    cfg = load_sim_config(args.config)
    if args.no_timeline:
        cfg = cfg.model_copy(update={"timeline_autostart": False})
    try:
        asyncio.run(_serve(cfg, args.admin_port))
    except OSError as exc:
        # The usual cause: a fixed port in sim.yaml is taken (another simulator still running?).
        print(
            f"turnout sim: cannot listen: {exc.strerror or exc} (is another simulator running? change the ports in {args.config})",
            file=sys.stderr,
        )
        return 1
    return 0


async def _serve(cfg: SimConfig, admin_port: int | None) -> None:
    sim = Simulator(cfg, admin_port=admin_port)
    await sim.start()
    try:
        _print_banner(sim)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await sim.stop()


def _print_banner(sim: Simulator) -> None:
    # Plain lines, not a table: the URLs must survive narrow terminals and pipes intact (people copy them).
    console = Console(soft_wrap=True)
    console.print("[bold]simulated providers[/bold]")
    width = max(len(pid) for pid in sim.providers)
    for pid, server in sim.providers.items():
        p = server.cfg
        models = ", ".join(m.name for m in p.models)
        console.print(
            f"  {pid:<{width}}  {server.base_url:<32} {p.family}/{p.effective_flavor}  {models}", highlight=False
        )
    console.print(
        f"admin API: {sim.admin_url}  (GET /providers, /faults, /stats, /timeline; docs/simulator.md)", highlight=False
    )
    if sim.timeline.running:
        console.print(f"timeline: {len(sim.config.timeline)} entries, running")
    console.print("Ctrl-C to stop")
