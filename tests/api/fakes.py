"""A small stand-in control node for API and webhook tests: real Store (SQLite in tmp_path), fake health/table source."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controlplane.clock import Clock
from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.domain import State
from controlplane.errors import ConfigError
from controlplane.events import EventBus
from controlplane.metrics import Metrics
from controlplane.store import Store
from controlplane.table import CurrentFigures, RouteRanking, Table, TableEntry

READ_TOKEN = "read-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"

CONFIG = f"""
auth:
  public_read: {{public}}
  tokens:
    - {{token: {READ_TOKEN}, scope: read, name: reader}}
    - {{token: {ADMIN_TOKEN}, scope: admin, name: ops}}
webhooks:
  allow_private_networks: ["127.0.0.0/8"]
  max_attempts: 4
  disable_after_failures: 2
  timeout: 2s
providers:
  - id: openai
    adapter: openai
    base_url: https://api.openai.com/v1
    api_key: sk-secret-provider-key
    models: [{{name: gpt-4o}}, {{name: gpt-4o-mini}}]
  - id: anthropic
    adapter: anthropic
    base_url: https://api.anthropic.com
    models: [{{name: claude-sonnet-4}}]
  - id: openrouter
    adapter: openai
    base_url: https://openrouter.ai/api/v1
    models: [{{name: meta/llama-3}}]
routes:
  - name: frontier
    targets: [anthropic/claude-sonnet-4, openai/gpt-4o]
  - name: cheap
    targets: [openai/gpt-4o-mini, openrouter/meta/llama-3]
"""


def make_config(public_read: bool = True) -> Config:
    return parse_config(CONFIG.replace("{public}", "true" if public_read else "false"), env={})


def make_table(cfg: Config, version: int, states: dict[str, State] | None = None, at: datetime | None = None) -> Table:
    states = states or {}
    entries: dict[str, TableEntry] = {}
    for ref in cfg.targets():
        st = states.get(ref.key, State.CLOSED)
        ok = st in (State.CLOSED, State.HALF_OPEN)
        entries[ref.key] = TableEntry(
            target=ref.key,
            provider=ref.provider,
            model=ref.model,
            state=st,
            admissible=ok,
            rank=1 if ok else None,
            score=1.0 if ok else None,
            reason="healthy" if ok else f"{st}: test",
            latency_p50_s=0.2 if ok else None,
        )
    routes = {}
    for r in cfg.routes:
        ranked = [entries[t] for t in r.targets]
        ranked.sort(key=lambda e: not e.admissible)
        routes[r.name] = RouteRanking(route=r.name, entries=tuple(ranked))
    return Table(
        version=version,
        published_at=at or datetime(2026, 1, 1, tzinfo=UTC),
        routes=routes,
        targets=entries,
        config_hash=cfg.hash,
    )


class FakeTableSource:
    def __init__(self, table: Table) -> None:
        self._table = table
        self._changed = asyncio.Event()

    def current(self) -> Table:
        return self._table

    def publish(self, table: Table) -> None:
        self._table = table
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_newer(self, version: int, timeout: float) -> Table | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._table.version <= version:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
            except TimeoutError:
                return None
        return self._table


class FakeHealth:
    def __init__(self) -> None:
        self.since: dict[str, str] = {}

        self.figures: dict[str, CurrentFigures] = {}  # the window's figures of now, laid over the table by readers

    def target_detail(self, target: str) -> dict[str, Any]:
        return {"state": "closed", "since": self.since.get(target), "window": {"calls": 10, "failures": 0}}

    def figures_now(self) -> dict[str, CurrentFigures]:
        return dict(self.figures)


class FakeRuntime:
    """The attributes the API reads, with drain/undrain/reload recorded and reflected in the table."""

    def __init__(self, tmp_path: Path, clock: Clock, *, public_read: bool = True, db_url: str | None = None) -> None:
        self.config = make_config(public_read)
        self.clock = clock
        self.store = Store(db_url or f"sqlite:///{tmp_path / 'turnout.db'}", clock)
        self.bus = EventBus()
        self.health = FakeHealth()
        self.metrics = Metrics()
        self.table_source = FakeTableSource(make_table(self.config, 1))
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.reload_error: ConfigError | None = None
        self.states: dict[str, State] = {}

    def readiness_checks(self) -> dict[str, bool]:
        return {}  # a stand-in: no pipeline whose writes could fail, nothing to wait for

    def publish_states(self, states: dict[str, State]) -> Table:
        self.states.update(states)
        table = make_table(self.config, self.table_source.current().version + 1, self.states)
        self.table_source.publish(table)
        return table

    def _keys(self, target: str | None, provider: str | None) -> list[str]:
        if target is not None:
            return [target]
        return [t.key for t in self.config.targets() if t.provider == provider]

    async def drain(
        self,
        *,
        target: str | None = None,
        provider: str | None = None,
        reason: str,
        until: datetime | None = None,
        actor: str,
    ) -> None:
        self.calls.append(
            ("drain", {"target": target, "provider": provider, "reason": reason, "until": until, "actor": actor})
        )
        self.publish_states({k: State.DRAINED for k in self._keys(target, provider)})

    async def undrain(
        self, *, target: str | None = None, provider: str | None = None, reason: str = "", actor: str
    ) -> None:
        self.calls.append(("undrain", {"target": target, "provider": provider, "reason": reason, "actor": actor}))
        self.publish_states({k: State.CLOSED for k in self._keys(target, provider)})

    async def reload_config(self, *, actor: str = "system") -> Config:
        self.calls.append(("reload", {"actor": actor}))
        if self.reload_error is not None:
            raise self.reload_error
        return self.config
