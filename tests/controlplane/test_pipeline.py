"""The observation pipeline: durable before visible, never blocking, serialised operator actions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from controlplane.config import Config
from controlplane.domain import ErrorClass, Observation, Source, State
from controlplane.errors import StoreError
from controlplane.events import Event, EventBus
from controlplane.metrics import Metrics
from controlplane.pipeline import Pipeline
from controlplane.store import Store
from controlplane.table import Table, TableEntry
from tests.fakes import EventSink, FakeClock
from tests.probes.scripted import make_config


@dataclass
class Out:
    transitions: list[Any] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    table: Table | None = None
    rechecks: list[tuple[str, str]] = field(default_factory=list)


class FakeHealth:
    """Each failure makes a new table version and one event; drains record themselves."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.version, self.seen, self.actions = clock, 0, 0, []  # type: ignore[var-annotated]
        self.table = self._table()

    def _table(self) -> Table:
        e = TableEntry("p0/m0", "p0", "m0", State.CLOSED, True, 1, 1.0, "ok")
        return Table(self.version, self.clock.wall(), targets={"p0/m0": e})

    def ingest_many(self, obs_list: Iterable[Observation]) -> Out:
        obs = list(obs_list)
        self.seen += len(obs)
        fails = [o for o in obs if not o.ok]
        if not fails:
            return Out()
        self.version += 1
        self.table = self._table()
        return Out(
            [], [Event("target.state_changed", self.clock.wall(), fails[0].target, {"n": len(fails)})], self.table
        )

    def tick(self) -> Out:
        return Out()

    def drain(self, **kw: Any) -> Out:
        self.actions.append(("drain", kw))
        return Out([], [Event("override.changed", self.clock.wall(), kw.get("target") or "", {"action": "drain"})])

    def undrain(self, **kw: Any) -> Out:
        self.actions.append(("undrain", kw))
        return Out()

    def set_config(self, config: Config) -> Out:
        self.actions.append(("reload", config.hash))
        return Out()

    def snapshot(self) -> dict[str, Any]:
        return {"seen": self.seen, "version": self.version}


class CheckingPublisher:
    """Asserts at publish time that the table is already in the store."""

    def __init__(self, store: Store) -> None:
        self.store, self.published = store, []  # type: ignore[var-annotated]

    def publish(self, table: Table) -> None:
        _, stored = self.store.load_health()
        assert stored is not None and stored.version == table.version, "published before it was durable"
        self.published.append(table.version)


def _obs(clock: FakeClock, ec: ErrorClass = ErrorClass.OK) -> Observation:
    return Observation(target="p0/m0", at=clock.wall(), source=Source.PROBE, kind="completion", error_class=ec)


@pytest.fixture
def parts(tmp_path: Any, clock: FakeClock) -> Any:
    store = Store(f"sqlite:///{tmp_path}/p.db", clock)
    health = FakeHealth(clock)
    pub = CheckingPublisher(store)
    bus = EventBus()
    sink = EventSink()
    bus.subscribe(sink)
    m = Metrics()
    pipe = Pipeline(store=store, health=health, publisher=pub, bus=bus, clock=clock, metrics=m, batch_max=10)
    yield store, health, pub, sink, m, pipe
    store.close()


async def test_batches_are_stored_ingested_persisted_then_published(parts: Any, clock: FakeClock) -> None:
    store, health, pub, sink, m, pipe = parts
    seen_in_store: list[int | None] = []
    pipe.bus.subscribe(lambda e: seen_in_store.append(store.list_events()[-1].id))  # event durable when published
    pipe.start()
    for i in range(25):
        pipe.submit(_obs(clock, ErrorClass.SERVER_ERROR if i % 10 == 9 else ErrorClass.OK))
    await pipe.flush()
    await pipe.stop()
    assert health.seen == 25 and store.table_counts()["observations"] == 25
    assert pub.published == sorted(pub.published) and pub.published[-1] == health.version
    assert [e.type for e in sink.events] == ["target.state_changed"] * len(pub.published)
    assert [e.id for e in sink.events] == seen_in_store  # ids assigned by the store before the bus saw them
    assert store.load_health()[0] == {"seen": 25, "version": health.version}
    assert m.registry.get_sample_value("turnout_table_version") == health.version
    assert (
        m.registry.get_sample_value(
            "turnout_observations_total", {"provider": "p0", "model": "m0", "source": "probe", "error_class": "ok"}
        )
        == 23
    )


async def test_submit_never_blocks_and_a_full_queue_drops_and_counts(parts: Any, clock: FakeClock) -> None:
    store, health, pub, sink, m, _ = parts
    pipe = Pipeline(store=store, health=health, publisher=pub, bus=EventBus(), clock=clock, queue_max=3)
    for _ in range(5):
        pipe.submit(_obs(clock))  # no task is draining: the 4th and 5th are dropped, nothing waits
    assert pipe.dropped == 2
    await pipe.flush()
    assert health.seen == 3


async def test_a_table_that_could_not_be_persisted_is_not_published_until_it_is(
    parts: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, health, pub, sink, m, pipe = parts
    real = store.save_health

    def failing(*a: Any, **kw: Any) -> None:
        raise StoreError("save_health", "disk full")

    monkeypatch.setattr(store, "save_health", failing)
    await pipe.process([_obs(clock, ErrorClass.TIMEOUT)])
    assert pub.published == [] and pipe.store_failures == 1
    monkeypatch.setattr(store, "save_health", real)
    await pipe.process([_obs(clock)])  # next batch: the pending table is persisted, then published
    assert pub.published == [1]


async def test_operator_actions_are_persisted_and_audited(parts: Any, clock: FakeClock) -> None:
    store, health, pub, sink, m, pipe = parts
    await pipe.drain(target="p0/m0", reason="maintenance", until=None, actor="ops")
    await pipe.undrain(target="p0/m0", actor="ops")
    cfg = make_config()
    await pipe.reload(cfg, actor="sighup")
    assert [a[0] for a in health.actions] == ["drain", "undrain", "reload"]
    types = [e.type for e in store.list_events()]
    assert types == ["override.changed", "config.reloaded"] and sink.types() == types
    reloaded = store.list_events(types=["config.reloaded"])[0]
    assert reloaded.config_hash == cfg.hash and reloaded.data["actor"] == "sighup"


async def test_housekeeping_prunes_by_configured_retention(parts: Any, clock: FakeClock) -> None:
    store, health, pub, sink, m, pipe = parts
    await pipe.process([_obs(clock)])
    clock.advance(30 * 86400)
    out = await pipe.housekeeping(make_config())
    assert out["observations"] == 1 and isinstance(datetime.now(), datetime)
