"""`turnout keys create|list|show|revoke|rotate`: client keys for the data plane.

Through a running control plane's API (`--url`, default http://127.0.0.1:8701, with an admin `--token` or
TURNOUT_TOKEN), or straight in the store with `--config turnout.yaml` (no server needed: the first key, before
`turnout serve` will bind the data plane beyond loopback). `create` and `rotate` print the key once; nothing can
show it again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table as RichTable

from controlplane.commands.webhooks_cmd import DEFAULT_URL, CliError, WebhooksClient

__all__ = ["add_parser", "LocalKeys"]


class LocalKeys:
    """The same calls as the API, answered from the store named by a config file (for use without a server)."""

    def __init__(self, config_path: str) -> None:
        from controlplane.clock import SystemClock
        from controlplane.config_loader import load_config
        from controlplane.keys.store import KeyStore
        from controlplane.store import Store

        self.config = load_config(config_path)
        self.clock = SystemClock()
        self.store = Store(self.config.database.url, self.clock)
        self.keys = KeyStore(self.store.engine, self.clock)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        from controlplane.api.jsonio import ApiError
        from controlplane.api.keys import check_spec
        from controlplane.keys.model import KeySpec

        now = self.clock.wall().timestamp()
        parts = path.removeprefix("/api/v1/keys").strip("/").split("/")
        key_id = parts[0] if parts[0] else None
        try:
            if method == "POST" and key_id is None:
                try:
                    spec = KeySpec.model_validate(body or {})
                except ValidationError as exc:
                    first = exc.errors(include_url=False)[0]
                    where = ".".join(str(p) for p in first["loc"])
                    raise CliError(f"{where}: {str(first['msg']).removeprefix('Value error, ')}") from None
                check_spec(spec, self.config, now)
                record, key = self.keys.create(spec)
                return {**record.public(now), "key": key}
            if method == "GET" and key_id is None:
                return {"keys": [r.public(now) for r in self.keys.records()]}
            assert key_id is not None
            if method == "GET":
                found = self.keys.get(key_id)
                if found is None:
                    raise CliError(f"404: unknown key {key_id!r}")
                return {**found.public(now), "use": self.keys.use(found).public()}
            if method == "DELETE":
                revoked = self.keys.revoke(key_id)
                if revoked is None:
                    raise CliError(f"404: unknown key {key_id!r}")
                return revoked.public(now)
            try:
                rotated = self.keys.rotate(key_id)
            except ValueError as exc:
                raise CliError(f"409: {exc}") from None
            if rotated is None:
                raise CliError(f"404: unknown key {key_id!r}")
            return {**rotated[0].public(now), "key": rotated[1]}
        except ApiError as exc:
            raise CliError(f"{exc.status}: {exc.message}") from None
        finally:
            self.store.close()


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keys", help="client keys for the data plane")
    p.add_argument(
        "--url", default=os.environ.get("TURNOUT_URL", DEFAULT_URL), help="control plane URL (default %(default)s)"
    )
    p.add_argument(
        "--token", default=os.environ.get("TURNOUT_TOKEN"), help="admin bearer token (default: $TURNOUT_TOKEN)"
    )
    p.add_argument("-c", "--config", help="work on this config's store directly instead of through the API")
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    ksub = p.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)
    create = ksub.add_parser("create", help="make a key; prints it once")
    create.add_argument("--name", required=True, help="who it is for (team, service)")
    create.add_argument("--routes", help="comma-separated routes (or provider/model) it may use; default all")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens (in + out) per minute")
    create.add_argument("--budget-usd", type=float, help="estimated spend allowed per budget period")
    create.add_argument("--budget-period", choices=("day", "week", "month"), default="month")
    create.add_argument("--expires", help="expiry, ISO 8601 (2027-01-01 or 2027-01-01T12:00:00Z)")
    create.set_defaults(func=_create)
    ls = ksub.add_parser("list", help="list keys (never the keys themselves)")
    ls.set_defaults(func=_list)
    for name, helptext, func in (
        ("show", "a key's limits, state and use this period", "_show"),
        ("revoke", "revoke a key for good", "_revoke"),
        ("rotate", "a new key for the same id; prints it once; the old one stops working", "_rotate"),
    ):
        sp = ksub.add_parser(name, help=helptext)
        sp.add_argument("id", help="the key's public id (tk_<id>_…)")
        sp.set_defaults(func=globals()[func])


def _client(args: argparse.Namespace) -> WebhooksClient | LocalKeys:
    return LocalKeys(args.config) if args.config else WebhooksClient(args.url, args.token)


def _run(args: argparse.Namespace, fn: Any) -> int:
    try:
        return int(fn(_client(args), args, Console()))
    except CliError as exc:
        print(f"turnout keys: {exc}", file=sys.stderr)
        return 1


def _expiry(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--expires: not an ISO 8601 date or time: {text!r} (e.g. 2027-01-01)") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()


def _print_key(out: Console, k: dict[str, Any], verb: str) -> None:
    out.print(f"[green]{verb}[/green] key {k['id']} ({k['name']})", highlight=False)
    print(f"key (shown once, keep it safe): {k['key']}")  # plain print: rich would wrap it at the terminal width


def _create(args: argparse.Namespace) -> int:
    def go(c: Any, a: argparse.Namespace, out: Console) -> int:
        body: dict[str, Any] = {"name": a.name, "budget_period": a.budget_period}
        if a.routes:
            body["routes"] = [r.strip() for r in a.routes.split(",") if r.strip()]
        for field in ("rpm", "tpm", "budget_usd"):
            if getattr(a, field) is not None:
                body[field] = getattr(a, field)
        if a.expires:
            body["expires_at"] = _expiry(a.expires)
        created = c.call("POST", "/api/v1/keys", body)
        if a.json:
            print(json.dumps(created, indent=2))
        else:
            _print_key(out, created, "created")
        return 0

    return _run(args, go)


def _limits(k: dict[str, Any]) -> str:
    parts = [f"{k['rpm']} rpm" if k["rpm"] else "", f"{k['tpm']} tpm" if k["tpm"] else ""]
    if k["budget_usd"] is not None:
        parts.append(f"${k['budget_usd']:g}/{k['budget_period']}")
    return ", ".join(p for p in parts if p) or "-"


def _list(args: argparse.Namespace) -> int:
    def go(c: Any, a: argparse.Namespace, out: Console) -> int:
        items = c.call("GET", "/api/v1/keys")["keys"]
        if a.json:
            print(json.dumps(items, indent=2))
            return 0
        t = RichTable("id", "name", "state", "routes", "limits", "expires", title="client keys")
        for k in items:
            routes = ", ".join(k["routes"]) if k["routes"] is not None else "all"
            t.add_row(k["id"], k["name"], k["state"], routes, _limits(k), k["expires_at"] or "-")
        out.print(t)
        return 0

    return _run(args, go)


def _show(args: argparse.Namespace) -> int:
    def go(c: Any, a: argparse.Namespace, out: Console) -> int:
        k = c.call("GET", f"/api/v1/keys/{a.id}")
        if a.json:
            print(json.dumps(k, indent=2))
            return 0
        use = k["use"]
        routes = ", ".join(k["routes"]) if k["routes"] is not None else "all"
        lines = [
            f"key {k['id']} ({k['name']}): {k['state']}",
            f"routes: {routes}",
            f"limits: {_limits(k)}",
            f"expires: {k['expires_at'] or 'never'}",
            f"this {use['period']} ({use['since'][:10]} to {use['until'][:10]}): {use['requests']} requests, "
            f"{use['tokens_in']} tokens in, {use['tokens_out']} out, ${use['cost_usd']:.4f} estimated"
            + (f" of ${k['budget_usd']:g}" if k["budget_usd"] is not None else ""),
        ]
        for line in lines:
            out.print(line, highlight=False)
        return 0

    return _run(args, go)


def _revoke(args: argparse.Namespace) -> int:
    def go(c: Any, a: argparse.Namespace, out: Console) -> int:
        k = c.call("DELETE", f"/api/v1/keys/{a.id}")
        if a.json:
            print(json.dumps(k, indent=2))
        else:
            out.print(f"revoked key {k['id']} ({k['name']})", highlight=False)
        return 0

    return _run(args, go)


def _rotate(args: argparse.Namespace) -> int:
    def go(c: Any, a: argparse.Namespace, out: Console) -> int:
        k = c.call("POST", f"/api/v1/keys/{a.id}/rotate")
        if a.json:
            print(json.dumps(k, indent=2))
        else:
            _print_key(out, k, "rotated")
        return 0

    return _run(args, go)
