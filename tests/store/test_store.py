"""Store behaviour on both backends: durable observations, rollups/uptime, events with hooks, snapshots."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session

from controlplane.database import safe_url
from controlplane.domain import ErrorClass, Observation, Source, State
from controlplane.events import Event
from controlplane.store import Store
from controlplane.table import RouteRanking, Table, TableEntry
from tests.fakes import FakeClock


def _obs(
    clock: FakeClock, target: str = "p/m", ec: ErrorClass = ErrorClass.OK, kind: str = "completion", **kw: object
) -> Observation:
    return Observation(target=target, at=clock.wall(), source=Source.PROBE, kind=kind, error_class=ec, **kw)  # type: ignore[arg-type]


def _table(version: int, clock: FakeClock) -> Table:
    e = TableEntry(
        target="p/m", provider="p", model="m", state=State.CLOSED, admissible=True, rank=1, score=1.0, reason="ok"
    )
    return Table(version=version, published_at=clock.wall(), routes={"r": RouteRanking("r", (e,))}, targets={"p/m": e})


def test_observations_round_trip_and_latest_per_kind(store: Store, clock: FakeClock) -> None:
    store.add_observations([_obs(clock, kind="catalogue"), _obs(clock, ec=ErrorClass.TIMEOUT, latency_s=10.0)])
    clock.advance(5)
    store.add_observations([_obs(clock, status=200, latency_s=0.4, ttft_s=0.1, headroom=0.5, extra={"tokens": 3})])
    latest = store.latest_observations("p/m")
    assert set(latest) == {"catalogue", "completion"}
    assert (
        latest["completion"].ok
        and latest["completion"].latency_s == 0.4
        and latest["completion"].extra == {"tokens": 3}
    )
    assert latest["completion"].at == clock.wall()
    assert store.latest_observations("other/x") == {}


def test_bulk_written_observations_are_stored_as_the_orm_stores_them(store: Store, clock: FakeClock) -> None:
    """add_observations writes one multi-row INSERT (controlplane/bulk.py); the stored form must not change."""
    from controlplane.rows import ObservationRow

    o = _obs(
        clock,
        status=503,
        latency_s=0.25,
        headroom=0.5,
        retry_after_s=2.0,
        code="overloaded_error",
        detail="Overloaded ✓",
        extra={"stream_duration_s": 1.5, "n": [1, 2]},
    )
    store.add_observations([o, o])
    with Session(store.engine) as s:
        s.add(
            ObservationRow(
                target=o.target,
                provider="p",
                at=o.at,
                source=str(o.source),
                kind=o.kind,
                error_class=str(o.error_class),
                latency_s=0.25,
                ttft_s=None,
                tokens_per_s=None,
                status=503,
                headroom=0.5,
                retry_after_s=2.0,
                scope=str(o.scope),
                code="overloaded_error",
                detail="Overloaded ✓",
                extra={"stream_duration_s": 1.5, "n": [1, 2]},
            )
        )
        s.commit()
    with store.engine.connect() as conn:
        raw = [tuple(r[1:]) for r in conn.execute(text("SELECT * FROM observations ORDER BY id")).fetchall()]
    assert raw[0] == raw[1] == raw[2]  # same text, numbers and JSON as the ORM's own row
    assert store.latest_observations("p/m")["completion"].extra == {"stream_duration_s": 1.5, "n": [1, 2]}


def test_successful_live_calls_keep_one_raw_row_per_target_and_second_but_all_count(
    store: Store, clock: FakeClock
) -> None:
    def live(ec: ErrorClass = ErrorClass.OK, target: str = "p/m") -> Observation:
        return Observation(
            target=target, at=clock.wall(), source=Source.LIVE, kind="live", error_class=ec, latency_s=0.1
        )

    assert store.add_observations([live() for _ in range(5)] + [live(target="q/m"), live(ErrorClass.SERVER_ERROR)]) == 3
    assert store.add_observations([live(), live(ErrorClass.TIMEOUT)]) == 1  # same second: only the failure is a row
    clock.advance(1)
    assert store.add_observations([live(), live()]) == 1  # a new second: one more row
    with store.engine.connect() as conn:
        raw = conn.execute(
            text("SELECT error_class, count(*) FROM observations WHERE target = 'p/m' GROUP BY error_class")
        ).all()
    assert dict(raw) == {"ok": 2, "server_error": 1, "timeout": 1}
    pm = {r["target"]: r for r in store.uptime(3600)}["p/m"]
    assert (pm["ok"], pm["failed"]) == (8, 2)  # the rollups count every call


def test_uptime_counts_failures_but_not_client_errors_or_status_page_hints(store: Store, clock: FakeClock) -> None:
    batch = [_obs(clock, latency_s=1.0) for _ in range(7)]
    batch += [
        _obs(clock, ec=ErrorClass.SERVER_ERROR),
        _obs(clock, ec=ErrorClass.TIMEOUT),
        _obs(clock, ec=ErrorClass.CLIENT_ERROR),
    ]
    batch += [_obs(clock, kind="status_page", ec=ErrorClass.OK), _obs(clock, target="q/m", ec=ErrorClass.AUTH)]
    store.add_observations(batch[:5])
    store.add_observations(batch[5:])  # second batch lands in the same minute: counts add up
    rows = {r["target"]: r for r in store.uptime(3600)}
    pm = rows["p/m"]
    assert (pm["ok"], pm["failed"], pm["total"]) == (7, 2, 10)
    assert pm["uptime_pct"] == pytest.approx(100 * 7 / 9, abs=1e-3)
    assert pm["by_class"]["client_error"] == 1 and pm["latency_mean_s"] == pytest.approx(1.0)
    assert pm["error_budget_used"] == pytest.approx((2 / 9) / 0.005, rel=1e-3)
    assert rows["q/m"]["uptime_pct"] == 0.0
    assert [r["target"] for r in store.uptime(3600, provider="q")] == ["q/m"]
    assert [r["target"] for r in store.uptime(3600, target="p/m")] == ["p/m"]
    clock.advance(7200)
    assert store.uptime(3600) == []  # outside the window


def test_prune_drops_raw_observations_but_keeps_rollups_for_uptime(store: Store, clock: FakeClock) -> None:
    store.add_observations([_obs(clock), _obs(clock, ec=ErrorClass.CONNECT)])
    clock.advance(3 * 86400)
    store.add_observations([_obs(clock)])
    out = store.rollup_and_prune(clock.wall(), observation_retention=86400, rollup_retention=30 * 86400)
    assert out == {"observations": 2, "rollups": 0}
    assert store.table_counts()["observations"] == 1
    assert store.uptime(4 * 86400)[0]["total"] == 3  # history survives in the rollups
    out = store.rollup_and_prune(clock.wall(), observation_retention=86400, rollup_retention=86400)
    assert out["rollups"] == 1


def test_events_get_monotonic_ids_and_filter(store: Store, clock: FakeClock) -> None:
    first = store.append_events([Event("target.state_changed", clock.wall(), "p/m", {"to": "open"}, config_hash="abc")])
    more = store.append_events(
        [Event("route.primary_changed", clock.wall(), "r"), Event("target.withdrawn", clock.wall(), "p/m")]
    )
    ids = [e.id for e in first + more if e.id is not None]
    assert ids == sorted(ids) and len(set(ids)) == 3  # three events, each given an id
    assert [e.type for e in store.list_events(after=first[0].id)] == ["route.primary_changed", "target.withdrawn"]
    assert [e.id for e in store.list_events(limit=2)] == ids[1:]  # newest two, ascending
    only = store.list_events(types=["target.state_changed"])
    assert len(only) == 1 and only[0].data == {"to": "open"} and only[0].config_hash == "abc"


def test_event_hook_runs_in_the_same_transaction(store: Store, clock: FakeClock) -> None:
    seen: list[int | None] = []

    def hook(session: Session, events: list[Event]) -> None:
        seen.extend(e.id for e in events)
        if any(e.type == "boom" for e in events):
            raise RuntimeError("outbox failed")

    store.add_event_hook(hook)
    ok = store.append_events([Event("target.withdrawn", clock.wall(), "p/m")])
    assert seen == [ok[0].id]
    with pytest.raises(RuntimeError):
        store.append_events([Event("boom", clock.wall(), "p/m")])
    assert [e.type for e in store.list_events()] == ["target.withdrawn"]  # rolled back with the hook


def test_health_snapshot_and_tables_survive_reopen(store_url: str, clock: FakeClock) -> None:
    s1 = Store(store_url, clock)
    assert s1.load_health() == (None, None)
    for v in range(1, 60):
        s1.save_health({"targets": {"p/m": {"state": "open"}}, "v": v}, _table(v, clock))
    s1.save_health({"v": 99}, None)  # snapshot only: the newest table stays
    s1.close()
    s2 = Store(store_url, clock)
    snap, table = s2.load_health()
    assert snap == {"v": 99}
    assert table is not None and table.version == 59 and table.routes["r"].primary is not None
    assert len(s2.table_history(limit=100)) == 50  # only the last N are kept
    assert s2.schema_version() >= 1
    s2.close()


def test_schema_migration_adds_missing_columns(store_url: str, clock: FakeClock) -> None:
    s = Store(store_url, clock)
    with s.engine.begin() as conn:
        conn.execute(text("ALTER TABLE observations DROP COLUMN tokens_per_s"))
    s.create_schema()
    s.add_observations([_obs(clock, tokens_per_s=12.5)])
    assert s.latest_observations("p/m")["completion"].tokens_per_s == 12.5
    s.close()


def test_database_password_is_never_shown() -> None:
    assert safe_url("postgresql+psycopg://turnout:s3cret@db/turnout") == "postgresql+psycopg://turnout:***@db/turnout"


def test_sqlite_runs_in_wal_mode(tmp_path: object, clock: FakeClock) -> None:
    s = Store(f"sqlite:///{tmp_path}/wal.db", clock)
    with s.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10000
    s.close()


def test_old_events_are_pruned_with_retention(store: Store, clock: FakeClock) -> None:
    store.append_events([Event("x", clock.wall(), "s")])
    clock.advance(10)
    store.append_events([Event("y", clock.wall(), "s")])
    out = store.rollup_and_prune(
        clock.wall() + timedelta(seconds=1), observation_retention=1, rollup_retention=1, event_retention=5
    )
    assert out["events"] == 1 and [e.type for e in store.list_events()] == ["y"]
