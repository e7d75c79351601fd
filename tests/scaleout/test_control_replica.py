"""Two control replicas (each leading through a real ControlPlane) on one PostgreSQL database, in one process: one leads, the other
follows the table through the store; on a hand-over the new leader resumes breaker states and versions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from controlplane.control_plane import ControlPlane
from controlplane.domain import Observation
from controlplane.scaleout.control_replica import ControlReplica, NotLeader, lifecycle_for
from controlplane.table import Table
from tests.scaleout.helpers import small_config
from tests.support import free_port
from tests.support import until as _until

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[list[ControlReplica]]:
    out: list[ControlReplica] = []
    for _ in range(2):
        cfg = small_config(f"""
database: {{url: "{pg_url}"}}
server: {{control: {{port: {free_port()}}}}}
scale_out: {{leader_lease: 2s, poll_interval: 200ms}}
probes: {{kinds: {{catalogue: {{enabled: false}}, completion: {{enabled: false}}, status_page: {{enabled: false}}}}}}
""")
        assert isinstance(lifecycle_for(cfg), ControlReplica)
        rep = ControlReplica(cfg, probes=False, webhooks=True)
        await rep.start()
        out.append(rep)
    yield out
    for rep in out:
        await rep.stop()


def _state(t: Table, target: str) -> str:
    return str(t.targets[target].state)


async def test_one_leads_the_other_follows_and_takes_over_with_state_and_versions(
    replicas: list[ControlReplica],
) -> None:
    await _until(lambda: any(r.leading for r in replicas))
    leader = next(r for r in replicas if r.leading)
    follower = next(r for r in replicas if r is not leader)
    assert not follower.is_leader

    await leader.drain(target="p1/m1", reason="maintenance", actor="test")
    v = leader.table_source.current().version
    got = await follower.table_source.wait_newer(v - 1, timeout=5.0)
    assert got is not None and got.version == v and _state(got, "p1/m1") == "drained", (
        "the follower serves the leader's table"
    )

    def follower_sees_drain() -> bool:  # its health view: read from the stored snapshot, set on the event loop
        h = follower.health
        return h is not None and h.target_detail("p1/m1")["state"] == "drained"

    await _until(follower_sees_drain, what="the follower's health view shows the drain")

    with pytest.raises(NotLeader, match="leader at http://"):
        await follower.drain(target="p1/m2", reason="x", actor="test")
    follower.submit(Observation.success("p1/m2", kind="completion", at=follower.clock.wall()))
    assert follower.dropped == 1, "a follower runs no pipeline: live outcomes are counted and dropped"
    held = (follower.table_source, follower.store, follower.sink)  # what the follower's control app holds

    await leader.stop()  # resigns: the follower takes over at its next election step
    await _until(lambda: follower.leading)
    assert (follower.table_source, follower.store, follower.sink) == held, "readers' handles survive the election"
    assert follower.health is follower.plane.health, "the new leader's status API shows its live health model"
    t = follower.table_source.current()
    assert t.version >= v and _state(t, "p1/m1") == "drained", "breaker and override states resumed from the store"
    await follower.undrain(target="p1/m1", actor="test")
    t2 = follower.table_source.current()
    assert t2.version > v and _state(t2, "p1/m1") != "drained"


def test_sqlite_runs_the_control_plane_itself() -> None:
    assert isinstance(lifecycle_for(small_config()), ControlPlane)
