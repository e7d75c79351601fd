"""Static stability across partitions (issue 18 item 6), on a real PostgreSQL: a deposed leader's health and
event writes are refused by the database (the lease term checked in the write's own transaction), and two
`turnout serve --role all` processes on one database do not both lead."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from controlplane.commands.serve_cmd import compose
from controlplane.events import Event
from controlplane.fencing import Fenced, LeaseFence
from controlplane.scaleout.control_replica import ControlReplica
from controlplane.scaleout.leader import LeaseElector
from controlplane.store import Store
from controlplane.table import Table
from controlplane.webhooks.outbox import install_outbox
from tests.fakes import FakeClock
from tests.scaleout.helpers import expire_lease, small_config
from tests.support import free_port
from tests.support import until as _until

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


def _count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text(f'SELECT COUNT(*) FROM "{table}"')).scalar() or 0)


async def test_a_deposed_leaders_writes_are_refused_by_the_database(pg_url: str, clock: FakeClock) -> None:
    old = LeaseElector(pg_url, lease=2.0, holder="old", clock=clock)
    new = LeaseElector(pg_url, lease=2.0, holder="new", clock=clock)
    old_store, new_store = Store(pg_url, clock), Store(pg_url, clock)
    try:
        assert await old.step() and old.term == 1
        install_outbox(old_store, clock)  # events queue their webhook deliveries in the same transaction
        old_store.fence = LeaseFence("old", old.term)
        old_store.save_health({"format": 1, "targets": {}}, Table(version=1, published_at=clock.wall()))
        assert old_store.append_events([Event("target.state_changed", clock.wall(), "p/m", {"n": 1})])

        expire_lease(pg_url)  # the old leader is cut off; it has not noticed (no step since)
        assert await new.step() and new.term == 2
        assert old.is_leader, "the old leader still believes it leads: only the database can stop its writes"
        events_before, tables_before = _count(old_store, "events"), _count(old_store, "published_tables")

        with pytest.raises(Fenced, match="term 1 of old"):
            old_store.save_health({"format": 1, "targets": {"x": {}}}, Table(version=2, published_at=clock.wall()))
        with pytest.raises(Fenced):
            old_store.append_events([Event("target.state_changed", clock.wall(), "p/m", {"n": 2})])
        assert _count(old_store, "events") == events_before and _count(old_store, "published_tables") == tables_before
        snapshot, table = new_store.load_health()
        assert snapshot is not None and snapshot["targets"] == {} and table is not None and table.version == 1

        new_store.fence = LeaseFence("new", new.term)  # the new term writes
        new_store.save_health({"format": 1, "targets": {"y": {}}}, Table(version=2, published_at=clock.wall()))
        assert new_store.append_events([Event("target.state_changed", clock.wall(), "p/m", {"n": 3})])
    finally:
        for e in (old, new):
            await e._drop_connection()
        old_store.close()
        new_store.close()


async def test_a_fenced_write_waits_for_no_election_and_none_slips_past_it(pg_url: str, clock: FakeClock) -> None:
    """A write that read the lease FOR SHARE commits before a new leader's acquisition can update the row."""
    old = LeaseElector(pg_url, lease=2.0, holder="old", clock=clock)
    store = Store(pg_url, clock)
    try:
        assert await old.step()
        store.fence = LeaseFence("old", old.term)
        store.save_health({"format": 1, "targets": {}}, None)  # not blocked by the elector's own connection
        assert await old.step()  # and a renewal is not blocked by the store's finished transaction
    finally:
        await old._drop_connection()
        store.close()


async def test_two_role_all_processes_on_one_database_do_not_both_lead(pg_url: str) -> None:
    nodes: list[ControlReplica] = []
    for _ in range(2):
        cfg = small_config(f"""
database: {{url: "{pg_url}"}}
server: {{control: {{port: {free_port()}}}}}
scale_out: {{leader_lease: 2s, poll_interval: 200ms}}
probes: {{kinds: {{catalogue: {{enabled: false}}, completion: {{enabled: false}}, status_page: {{enabled: false}}}}}}
""")
        life, control, data = compose(cfg, None, "all")
        assert isinstance(life, ControlReplica) and control is life and data is life
        nodes.append(life)
    try:
        for n in nodes:
            await n.start()
        await _until(lambda: any(n.leading for n in nodes))
        leader = next(n for n in nodes if n.leading)
        other = next(n for n in nodes if n is not leader)
        third = LeaseElector(pg_url, lease=2.0, holder="third")
        try:
            assert not await third.step(), "the lease is held: no other process can lead now"
        finally:
            await third._drop_connection()
        assert sum(n.is_leader for n in nodes) == 1 and not other.leading
        assert other.decision_engine is other.store.engine and other.forward_decision is None
        await leader.stop()
        await _until(lambda: other.leading)
    finally:
        for n in nodes:
            await n.stop()
