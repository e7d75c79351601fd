"""The paid-probe spend budget survives a restart (issue 18 item 6): today's spend is kept in the store."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from controlplane.store import Store
from probes.budget import SpendBudget
from tests.controlplane.test_control_plane import Script, _runtime, _write
from tests.fakes import FakeClock


def test_spend_is_saved_and_loaded_per_provider_and_day(tmp_path: Path, clock: FakeClock) -> None:
    store = Store(f"sqlite:///{tmp_path / 't.db'}", clock)
    changes: list[int] = []
    b = SpendBudget(clock, ledger=store, on_change=lambda: changes.append(1))
    r = b.try_reserve("acme", 0.30, 1.00)
    assert r is not None and b.dirty and changes == [1]
    b.settle(r, 0.25)
    assert b.try_reserve("other", 0.10, 1.00) is not None
    b.flush()
    assert not b.dirty and len(changes) == 3

    again = SpendBudget(clock, ledger=store)
    again.load()
    assert again.spent("acme") == pytest.approx(0.25) and again.spent("other") == pytest.approx(0.10)
    assert again.try_reserve("acme", 0.80, 1.00) is None, "the cap counts what was spent before the restart"
    assert again.try_reserve("acme", 0.75, 1.00) is not None

    clock.advance(timedelta(days=1).total_seconds())
    tomorrow = SpendBudget(clock, ledger=store)
    tomorrow.load()
    assert tomorrow.spent("acme") == 0.0, "a new UTC day starts a new budget"
    store.close()


def test_a_budget_without_a_ledger_keeps_working_in_memory(clock: FakeClock) -> None:
    b = SpendBudget(clock)
    b.load()
    assert b.try_reserve("acme", 0.5, 1.0) is not None
    b.flush()
    assert b.spent("acme") == 0.5


async def test_the_control_planes_budget_survives_its_restart(tmp_path: Path, clock: FakeClock) -> None:
    path, script = _write(tmp_path), Script()
    rt = await _runtime(path, clock, script)
    reservation = rt.scheduler.budget.try_reserve("a", 0.40, 1.00)  # what the completion probe does
    assert reservation is not None
    rt.scheduler.budget.settle(reservation, 0.35)
    await rt.stop()

    rt2 = await _runtime(path, clock, script)
    try:
        assert rt2.scheduler.budget.spent("a") == pytest.approx(0.35)
        assert rt2.scheduler.budget.try_reserve("a", 0.70, 1.00) is None
    finally:
        await rt2.stop()


async def test_spend_is_saved_soon_after_a_change_not_only_at_stop(tmp_path: Path, clock: FakeClock) -> None:
    """A kill -9 after a paid probe must not forget it: the save runs right after the change, off the loop."""
    path, script = _write(tmp_path), Script()
    rt = await _runtime(path, clock, script)
    try:
        assert rt.scheduler.budget.try_reserve("b", 0.20, 1.00) is not None
        await asyncio.sleep(0)  # one turn of the loop: the save was scheduled with call_soon_threadsafe
        assert rt._spend_flush is not None
        await rt._spend_flush
        assert not rt.scheduler.budget.dirty
        assert rt.store.load_spend(clock.wall().date()) == {"b": pytest.approx(0.20)}
    finally:
        await rt.stop()
