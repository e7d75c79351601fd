"""`turnout webhooks add|list|rm|test`: manage failover webhook endpoints through the status API (admin token).

Talks HTTP to a running control plane (`--url`, default http://127.0.0.1:8701) with `--token` (or the
TURNOUT_TOKEN environment variable). `add` prints the endpoint's signing secret once; it is not
retrievable later.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

__all__ = ["add_parser", "WebhooksClient", "CliError"]

DEFAULT_URL = "http://127.0.0.1:8701"


class CliError(Exception):
    """The control plane could not be reached or refused; the message says why (never the token)."""


class WebhooksClient:
    """A tiny blocking client for /api/v1/webhooks."""

    def __init__(self, url: str, token: str | None, timeout: float = 10.0) -> None:
        self.base = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                err = json.loads(raw)["error"]
                where = f" ({err['field']})" if err.get("field") else ""
                raise CliError(f"{exc.code}: {err['message']}{where}") from None
            except (ValueError, KeyError, TypeError):
                raise CliError(f"{exc.code}: {raw[:200].decode(errors='replace')}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(f"cannot reach the control plane at {self.base}: {reason}") from None
        return json.loads(raw) if raw else None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("webhooks", help="manage failover webhook endpoints")
    p.add_argument(
        "--url", default=os.environ.get("TURNOUT_URL", DEFAULT_URL), help="control plane URL (default %(default)s)"
    )
    p.add_argument(
        "--token", default=os.environ.get("TURNOUT_TOKEN"), help="admin bearer token (default: $TURNOUT_TOKEN)"
    )
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    wsub = p.add_subparsers(dest="webhooks_command", metavar="SUBCOMMAND", required=True)
    add = wsub.add_parser("add", help="register an endpoint; prints its signing secret once")
    add.add_argument("endpoint_url", help="receiver URL (http/https)")
    add.add_argument(
        "--event", "-e", action="append", default=[], help="event type or family.* (repeatable; default all)"
    )
    add.add_argument("--description", "-d", default="")
    add.set_defaults(func=_add)
    ls = wsub.add_parser("list", help="list endpoints")
    ls.set_defaults(func=_list)
    rm = wsub.add_parser("rm", help="remove an endpoint and its queued deliveries")
    rm.add_argument("id")
    rm.set_defaults(func=_rm)
    test = wsub.add_parser("test", help="send a webhook.test message to an endpoint")
    test.add_argument("id")
    test.set_defaults(func=_test)


def _client(args: argparse.Namespace) -> WebhooksClient:
    return WebhooksClient(args.url, args.token)


def _run(args: argparse.Namespace, fn: Any) -> int:
    try:
        return int(fn(_client(args), args, Console()))
    except CliError as exc:
        print(f"turnout webhooks: {exc}", file=sys.stderr)
        return 1


def _add(args: argparse.Namespace) -> int:
    def go(c: WebhooksClient, a: argparse.Namespace, out: Console) -> int:
        created = c.call(
            "POST", "/api/v1/webhooks", {"url": a.endpoint_url, "events": a.event, "description": a.description}
        )
        if a.json:
            print(json.dumps(created, indent=2))
            return 0
        out.print(
            f"[green]added[/green] {created['id']} → {created['url']} ({', '.join(created['events']) or 'all events'})"
        )
        out.print(f"signing secret (shown once, keep it safe): [bold]{created['secret']}[/bold]", highlight=False)
        return 0

    return _run(args, go)


def _list(args: argparse.Namespace) -> int:
    def go(c: WebhooksClient, a: argparse.Namespace, out: Console) -> int:
        items = c.call("GET", "/api/v1/webhooks")["webhooks"]
        if a.json:
            print(json.dumps(items, indent=2))
            return 0
        t = RichTable("id", "url", "events", "enabled", "failures", "description", title="webhook endpoints")
        for w in items:
            enabled = "yes" if w["enabled"] else f"[red]no[/red] ({w['disabled_reason'] or ''})"
            t.add_row(
                w["id"],
                w["url"],
                ", ".join(w["events"]) or "all",
                enabled,
                str(w["consecutive_failures"]),
                w["description"],
            )
        out.print(t)
        return 0

    return _run(args, go)


def _rm(args: argparse.Namespace) -> int:
    def go(c: WebhooksClient, a: argparse.Namespace, out: Console) -> int:
        c.call("DELETE", f"/api/v1/webhooks/{a.id}")
        out.print(f"removed {a.id}")
        return 0

    return _run(args, go)


def _test(args: argparse.Namespace) -> int:
    def go(c: WebhooksClient, a: argparse.Namespace, out: Console) -> int:
        res = c.call("POST", f"/api/v1/webhooks/{a.id}/test")
        if a.json:
            print(json.dumps(res, indent=2))
        else:
            out.print(
                f"queued test message {res['delivery_id']} (event {res['event_id']}); see deliveries with the API"
            )
        return 0

    return _run(args, go)
