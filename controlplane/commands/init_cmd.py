"""`turnout init [-o PATH] [--providers a,b,c]`: write a commented starter config and say which environment
variables it needs (controlplane/starter.py holds the per-provider entries)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from controlplane.starter import UnknownProvider, env_vars, starter_config

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init", help="write a commented starter turnout.yaml for the providers you use")
    p.add_argument("-o", "--output", default="turnout.yaml", help="file to write (default: turnout.yaml)")
    p.add_argument(
        "--providers",
        default="openai,anthropic",
        help="comma-separated providers, in failover order (default: openai,anthropic)",
    )
    p.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    p.set_defaults(func=_init)


def _init(args: argparse.Namespace) -> int:
    names = [n for n in args.providers.split(",") if n.strip()]
    try:
        text, needed = starter_config(names), env_vars(names)
    except UnknownProvider as exc:
        print(f"turnout init: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output)
    if out.exists() and not args.force:
        print(f"turnout init: {out} exists; pass --force to overwrite it or -o to write elsewhere", file=sys.stderr)
        return 2
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}. It reads these environment variables:")
    for name in needed:
        print(f"  export {name}=…")
    print(f"then: turnout config check {out} && turnout serve -c {out}")
    return 0
