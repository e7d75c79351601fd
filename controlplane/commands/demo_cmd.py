"""`turnout demo [--speed X] [--forever]`: simulator + control plane + data plane + client traffic, one
scripted outage story, a live view and a summary. Needs no API keys and no outside services."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from rich.console import Console

__all__ = ["add_parser"]


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--speed must be a number like 1 or 4, got {text!r}") from None
    if not 0.1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"--speed must be between 0.1 and 100, got {value:g}")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="play a scripted outage story against simulated providers (no keys needed)")
    p.add_argument(
        "--speed", type=_speed, default=1.0, help="compress the story: 2 plays it twice as fast (default 1: about 90 s)"
    )
    p.add_argument("--forever", action="store_true", help="keep everything running after the story, for exploring")
    p.add_argument(
        "--plain",
        action="store_true",
        help="plain progress lines instead of the live view (automatic without a terminal)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from controlplane.demo import DemoOptions, run_demo

    # The live view is the output; library logs (probe errors during scripted faults are expected) stay quiet.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    # Without a terminal (CI, `make demo > log`) lines must not be cut at 80 columns.
    console = Console(soft_wrap=not sys.stdout.isatty())
    opts = DemoOptions(speed=args.speed, forever=args.forever, plain=True if args.plain else None)
    try:
        return asyncio.run(run_demo(opts, console))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # e.g. no loopback port could be bound: say what, not a traceback
        console.print(f"[red]demo failed:[/red] {exc.strerror or exc}")
        return 1
