"""The `turnout` command. Each subcommand lives in its own module exposing `add_parser(subparsers)`;
this file only lists them, so commands can be added without touching each other."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Protocol

from adapters.sim import cli as sim_cmd
from controlplane.commands import (
    config_cmd,
    db_cmd,
    demo_cmd,
    init_cmd,
    serve_cmd,
    status_cmd,
    traffic_cmd,
    webhooks_cmd,
)
from controlplane.errors import ConfigError
from controlplane.version import __version__

__all__ = ["main", "COMMANDS"]


class _Command(Protocol):
    def add_parser(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        """Add the command's parser; it sets `func(args) -> int` on it."""
        ...


COMMANDS: tuple[_Command, ...] = (
    init_cmd,  # turnout init
    config_cmd,  # turnout config check
    serve_cmd,  # turnout serve
    sim_cmd,  # turnout sim
    status_cmd,  # turnout status / events
    webhooks_cmd,  # turnout webhooks add|list|rm|test
    db_cmd,  # turnout db …
    demo_cmd,  # turnout demo
    traffic_cmd,  # turnout traffic
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="turnout", description="Health-probing and failover control plane for LLM APIs"
    )
    parser.add_argument("--version", action="version", version=f"turnout {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
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
