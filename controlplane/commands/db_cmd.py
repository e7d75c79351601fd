"""`turnout db migrate|info|prune`: create or upgrade the schema, show tables and row counts, apply retention."""

from __future__ import annotations

import argparse

# Imported for the SQLModel tables they define beside the store's own, so `migrate` creates them too.
import controlplane.decisions
import controlplane.webhooks.rows  # noqa: F401
from controlplane.clock import SystemClock
from controlplane.config import Config, DatabaseConfig
from controlplane.config_loader import load_config
from controlplane.store import Store

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("db", help="database maintenance")
    dsub = p.add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)
    for name, helptext, func in (
        ("migrate", "create missing tables and columns; record the schema version", _migrate),
        ("info", "show the database, its schema version and row counts", _info),
        ("prune", "drop observations, rollups and events past their retention", _prune),
    ):
        c = dsub.add_parser(name, help=helptext)
        c.add_argument("-c", "--config", default="turnout.yaml", help="path to turnout.yaml")
        c.add_argument("--url", help="database URL (overrides database.url from the config)")
        c.set_defaults(func=func)


def _open(args: argparse.Namespace) -> tuple[Store, Config | None]:
    cfg = load_config(args.config) if args.url is None else None
    url: str = args.url or (cfg.database.url if cfg is not None else DatabaseConfig().url)
    return Store(url, SystemClock()), cfg


def _migrate(args: argparse.Namespace) -> int:
    from controlplane.database import safe_url

    store, _ = _open(args)
    print(f"schema version {store.schema_version()} at {safe_url(store.url)}")
    store.close()
    return 0


def _info(args: argparse.Namespace) -> int:
    from controlplane.database import safe_url

    store, _ = _open(args)
    print(f"database {safe_url(store.url)} (schema version {store.schema_version()})")
    counts = store.table_counts()
    width = max((len(n) for n in counts), default=5)
    for name, n in counts.items():
        print(f"  {name:<{width}}  {n:>10,}")
    store.close()
    return 0


def _prune(args: argparse.Namespace) -> int:
    store, cfg = _open(args)
    db = cfg.database if cfg is not None else DatabaseConfig()
    out = store.rollup_and_prune(
        store.clock.wall(),
        observation_retention=db.observation_retention,
        rollup_retention=db.rollup_retention,
        event_retention=db.event_retention,
    )
    print("pruned " + ", ".join(f"{n} {what}" for what, n in out.items()))
    store.close()
    return 0
