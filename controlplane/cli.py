"""The `turnout` command. Each subcommand lives in its own module exposing `add_parser(subparsers)`;
this file only lists them, so commands can be added without touching each other."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from controlplane.errors import ConfigError

__all__ = ["main", "COMMAND_MODULES"]

# module path → each defines add_parser(subparsers) which sets `func(args) -> int` on its parser.
COMMAND_MODULES: tuple[str, ...] = (
    "controlplane.commands.config_cmd",  # turnout config check
    "controlplane.commands.serve_cmd",  # turnout serve
    "adapters.sim.cli",  # turnout sim
    "controlplane.commands.status_cmd",  # turnout status / events
    "controlplane.commands.webhooks_cmd",  # turnout webhooks add|list|rm|test
    "controlplane.commands.keys_cmd",  # turnout keys create|list|show|revoke|rotate
    "controlplane.commands.db_cmd",  # turnout db …
    "controlplane.commands.demo_cmd",  # turnout demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="turnout", description="Health-probing and failover control plane for LLM APIs"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if name.startswith(str(exc.name)):  # that command (or its package) is not built yet
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
