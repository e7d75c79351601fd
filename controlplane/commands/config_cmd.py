"""`turnout config check FILE`: validate a config and print a summary (exit 2 on a mistake)."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table as RichTable

from controlplane.config_loader import load_config


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="work with turnout.yaml")
    csub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    check = csub.add_parser("check", help="validate a config file and print a summary")
    check.add_argument("file", help="path to turnout.yaml")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)
    console = Console()
    console.print(f"[green]ok[/green] {args.file} (config hash {cfg.hash})")
    providers = RichTable("provider", "adapter", "base_url", "region", "jurisdiction", "models", title="providers")
    for p in cfg.providers:
        providers.add_row(p.id, p.adapter, p.base_url, p.region, p.jurisdiction, ", ".join(m.name for m in p.models))
    console.print(providers)
    routes = RichTable("route", "mode", "targets", title="routes")
    for r in cfg.routes:
        if r.mode == "panel" and r.panel is not None:
            what = f"panel of {r.panel.size} (quorum {r.panel.quorum}) from {', '.join(r.panel.from_)}"
        else:
            what = ", ".join(r.targets) or "-"
        routes.add_row(r.name, r.mode, what)
    console.print(routes)
    kinds = ", ".join(f"{k} every {cfg.probe_interval(k):g}s" for k, v in cfg.probes.kinds.items() if v.enabled)
    console.print(f"probes: {kinds}; database: {cfg.database.url}")
    console.print(
        f"data plane http://{cfg.server.data.host}:{cfg.server.data.port}, control http://{cfg.server.control.host}:{cfg.server.control.port}"
    )
    return 0
