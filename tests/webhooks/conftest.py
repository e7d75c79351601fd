from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlmodel import Session, SQLModel, select

from controlplane.clock import Clock
from controlplane.config import WebhookConfig
from controlplane.metrics import Metrics
from controlplane.webhooks.dispatcher import AttemptResult, Dispatcher
from controlplane.webhooks.outbox import install_outbox
from controlplane.webhooks.rows import WebhookDelivery, WebhookEndpoint
from controlplane.webhooks.signing import generate_secret
from tests.api.fakes import FakeRuntime
from tests.fakes import FakeClock
from tests.support import pg_database, require_integration


class ScriptedDispatcher(Dispatcher):
    """A dispatcher whose HTTP attempts follow a script per URL (True = 2xx, int = that status)."""

    def __init__(self, script: dict[str, list[bool | int]], **kw: Any) -> None:
        super().__init__(**kw)
        self.script = script
        self.sent: list[tuple[str, str, bytes]] = []

    async def attempt(self, url: str, msg_id: str, secret: str, body: bytes) -> AttemptResult:
        self.sent.append((url, msg_id, body))
        steps = self.script.get(url, [])
        step = steps.pop(0) if steps else True
        if step is True:
            return AttemptResult(True, 200, None, 0.0)
        return AttemptResult(False, int(step), f"HTTP {int(step)} (non-2xx response)", 0.0)


def add_endpoint(rt: FakeRuntime, url: str, events: list[str] | None = None) -> WebhookEndpoint:
    ep = WebhookEndpoint(
        id=f"ep_{abs(hash(url)) % 10**8}",
        url=url,
        events_json=json.dumps(events or []),
        secret=generate_secret(),
        created_at=rt.clock.wall().timestamp(),
    )
    with Session(rt.store.engine) as s:
        s.add(ep)
        s.commit()
        s.refresh(ep)
    return ep


def deliveries(rt: FakeRuntime, endpoint_id: str | None = None) -> list[WebhookDelivery]:
    with Session(rt.store.engine) as s:
        q = select(WebhookDelivery)
        if endpoint_id is not None:
            q = q.where(WebhookDelivery.endpoint_id == endpoint_id)
        return list(s.exec(q.order_by(WebhookDelivery.seq)))  # type: ignore[arg-type]


def make_dispatcher(
    rt: FakeRuntime, script: dict[str, list[bool | int]], config: WebhookConfig | None = None
) -> ScriptedDispatcher:
    async def append(events: Any) -> Any:
        from controlplane.webhooks.service import append_and_publish

        return await append_and_publish(rt.store, rt.bus, rt.metrics, events)

    return ScriptedDispatcher(
        script,
        engine=rt.store.engine,
        clock=rt.clock,
        config=config or rt.config.webhooks,
        metrics=rt.metrics,
        append_events=append,
        rng=random.Random(7),
    )


@pytest.fixture(scope="session")
def webhooks_pg_url() -> Iterator[str | None]:
    """A PostgreSQL database of our own for this session (dropped at the end); None when unreachable."""
    with pg_database("turnout_wh") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def wrt(request: pytest.FixtureRequest, tmp_path: Path, webhooks_pg_url: str | None) -> Iterator[FakeRuntime]:
    """A stand-in runtime with the outbox installed, on SQLite and on PostgreSQL."""
    url = None
    if request.param == "postgres":
        require_integration(webhooks_pg_url is not None, "PostgreSQL not reachable at 127.0.0.1:5432")
        url = webhooks_pg_url
        engine = create_engine(str(url))
        SQLModel.metadata.drop_all(engine)  # each test starts empty
        engine.dispose()
    rt = FakeRuntime(tmp_path, FakeClock(), db_url=url)
    install_outbox(rt.store, rt.clock)
    yield rt
    rt.store.close()


def fresh_metrics() -> Metrics:
    return Metrics()


__all__ = ["ScriptedDispatcher", "add_endpoint", "deliveries", "make_dispatcher", "Clock"]
