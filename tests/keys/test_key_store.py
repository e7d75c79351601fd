"""The key store: keys shown once and kept only as hashes, revocation and rotation, spend per period, the ring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from controlplane.decisions import Decision, DecisionLog
from controlplane.keys import KeySpec, KeyStore, hash_key, key_id_of, matches, on_change, period_bounds
from controlplane.keys.tokens import new_key
from controlplane.store import Store
from tests.fakes import FakeClock

START = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Store:
    return Store(f"sqlite:///{tmp_path / 'k.db'}", clock)


@pytest.fixture
def keys(store: Store, clock: FakeClock) -> KeyStore:
    return KeyStore(store.engine, clock)


def test_a_key_is_shown_once_and_stored_only_as_its_hash(keys: KeyStore, store: Store) -> None:
    record, key = keys.create(KeySpec(name="team-a", routes=["main"], rpm=600, tpm=200_000))
    assert key.startswith(f"tk_{record.id}_") and len(key) > 40
    assert key_id_of(key) == record.id
    with store.engine.connect() as conn:
        dumped = "\n".join(str(tuple(r)) for r in conn.execute(text("SELECT * FROM client_keys")))
    assert key not in dumped and key.split("_", 2)[2] not in dumped
    assert hash_key(key) in dumped
    public = record.public(START.timestamp())
    assert key not in str(public) and hash_key(key) not in str(public)
    assert public["routes"] == ["main"] and public["state"] == "active"


def test_revoked_and_expired_keys_leave_the_ring_but_keys_stay_required(keys: KeyStore, clock: FakeClock) -> None:
    assert keys.ring().any_keys is False
    a, _ = keys.create(KeySpec(name="a"))
    b, _ = keys.create(KeySpec(name="b", expires_at=START + timedelta(hours=1)))
    assert {k.id for k in keys.ring().keys} == {a.id, b.id}
    keys.revoke(a.id)
    clock.advance(3601)
    ring = keys.ring()
    assert ring.keys == () and ring.any_keys is True  # revoking every key never opens the data plane
    assert keys.get(a.id) is not None and keys.get(a.id).state(clock.wall().timestamp()) == "revoked"  # type: ignore[union-attr]
    assert keys.get(b.id).state(clock.wall().timestamp()) == "expired"  # type: ignore[union-attr]


def test_rotation_keeps_the_id_and_replaces_the_secret(keys: KeyStore) -> None:
    record, old = keys.create(KeySpec(name="a"))
    rotated = keys.rotate(record.id)
    assert rotated is not None
    _, new = rotated
    assert key_id_of(new) == record.id and new != old
    (ring_key,) = keys.ring().keys
    assert matches(new, ring_key.key_hash) and not matches(old, ring_key.key_hash)
    keys.revoke(record.id)
    with pytest.raises(ValueError, match="revoked"):
        keys.rotate(record.id)
    assert keys.rotate("nosuchid") is None and keys.revoke("nosuchid") is None


def test_changes_are_announced_in_process(keys: KeyStore, store: Store) -> None:
    seen: list[tuple[str, str]] = []
    cancel = on_change(store.engine, lambda key_id, change: seen.append((key_id, change)))
    record, _ = keys.create(KeySpec(name="a"))
    keys.rotate(record.id)
    keys.revoke(record.id)
    cancel()
    keys.create(KeySpec(name="b"))
    assert seen == [(record.id, "created"), (record.id, "rotated"), (record.id, "revoked")]


async def test_spend_is_written_with_the_decision_log_and_summed_per_period(
    keys: KeyStore, store: Store, clock: FakeClock
) -> None:
    record, _ = keys.create(KeySpec(name="a", budget_usd=5.0, budget_period="day"))
    log = DecisionLog(store.engine, clock, retention_s=86400)
    await log.start()

    def decision(at: datetime, cost: float) -> Decision:
        return Decision(at, "main", "oa/gpt-x", "ok", 200, False, [], 10, 20, cost, key_id=record.id)

    log.record(decision(START - timedelta(days=1), 100.0))  # yesterday: another day's budget
    log.record(decision(START, 1.25))
    log.record(decision(START + timedelta(minutes=1), 0.5))
    log.record(Decision(START, "main", "oa/gpt-x", "ok", 200, False, [], 1, 1, 9.0))  # no key: nobody's budget
    await log.stop()
    use = keys.use(record)
    assert (use.requests, use.tokens_in, use.tokens_out, use.cost_usd) == (2, 20, 40, 1.75)
    (ring_key,) = keys.ring().keys
    assert ring_key.spent_usd == pytest.approx(1.75)
    assert ring_key.period_end == datetime(2026, 12, 3, tzinfo=UTC).timestamp()


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from(["day", "week", "month"]),
)
def test_a_period_holds_the_moment_it_was_computed_for(moment: datetime, period: str) -> None:
    at = moment.replace(tzinfo=UTC)
    start, end = period_bounds(period, at)
    assert start <= at < end
    assert start.hour == start.minute == start.second == 0
    if period == "week":
        assert start.weekday() == 0 and end - start == timedelta(days=7)
    if period == "month":
        assert start.day == 1 and end.day == 1


def test_only_well_formed_keys_have_an_id() -> None:
    key = new_key("abcd1234")
    assert key_id_of(key) == "abcd1234"
    for bad in ("", "tk_", "sk-abcdef", "tk_ABCD1234_x", "tk_abcd1234x", "tk_abc_1234_secret"):
        assert key_id_of(bad) is None, bad
