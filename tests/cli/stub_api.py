"""A stand-in status API serving real `Table.to_dict()` payloads, for CLI tests that must not wait on the
control app (the CLI is only a reader of the documented JSON shapes)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from controlplane.domain import State
from controlplane.table import RouteRanking, Table, TableEntry

__all__ = ["StubApi", "sample_table"]


def _entry(target: str, state: State, rank: int | None, reason: str, **kw: Any) -> TableEntry:
    provider, _, model = target.partition("/")
    return TableEntry(
        target=target,
        provider=provider,
        model=model,
        state=state,
        admissible=rank is not None,
        rank=rank,
        score=kw.pop("score", 0.9 if rank else None),
        reason=reason,
        **kw,
    )


def sample_table(version: int, primary: str = "openai/gpt-5.5") -> Table:
    others = [t for t in ("openai/gpt-5.5", "anthropic/claude-sonnet-4") if t != primary]
    entries = (
        _entry(
            primary,
            State.CLOSED,
            1,
            "closed: 0 failures in 60 s",
            latency_p50_s=0.12,
            latency_p95_s=0.3,
            error_rate=0.0,
            headroom=0.8,
        ),
        _entry(others[0], State.CLOSED, 2, "closed: healthy", latency_p50_s=0.2),
        _entry("deepseek/deepseek-chat", State.WITHDRAWN, None, "withdrawn: region_blocked (403) since 12:00:01"),
    )
    return Table(
        version=version,
        published_at=datetime(2026, 1, 1, 12, 0, version % 60, tzinfo=UTC),
        routes={"frontier": RouteRanking("frontier", entries), "cheap": RouteRanking("cheap", entries[1:2])},
        targets={e.target: e for e in entries},
        config_hash="abc123def4567890",
    )


class StubApi:
    """Serves /api/v1/table (with `after`/`wait` long-poll and 304) and /api/v1/events (`after`, `type`, `limit`)."""

    def __init__(self) -> None:
        self.table = sample_table(1)
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_get("/api/v1/table", self._table)
        self.app.router.add_get("/api/v1/events", self._events)
        self.parked_after: list[int] = []  # `after` of each long-poll parked right now
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, port: int) -> None:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def publish(self, table: Table) -> None:
        self.table = table
        self._changed.set()
        self._changed = asyncio.Event()

    def add_event(self, type_: str, subject: str, **data: Any) -> None:
        self.events.append(
            {
                "id": len(self.events) + 1,
                "type": type_,
                "at": "2026-01-01T12:00:05Z",
                "subject": subject,
                "data": data,
                "config_hash": "abc",
            }
        )

    async def _table(self, request: web.Request) -> web.Response:
        after = request.query.get("after")
        if after is not None and self.table.version <= int(after):
            changed = self._changed
            self.parked_after.append(int(after))
            try:
                # Capped at 1 s: a server may end a long-poll early, and a stuck test then fails fast.
                await asyncio.wait_for(changed.wait(), min(1.0, float(request.query.get("wait", "30"))))
            except TimeoutError:
                return web.Response(status=304)
            finally:
                self.parked_after.remove(int(after))
        return web.json_response(self.table.to_dict())

    async def _events(self, request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0"))
        items = [e for e in self.events if e["id"] > after and request.query.get("type") in (None, e["type"])]
        return web.json_response({"events": items[: int(request.query.get("limit", "100"))]})
