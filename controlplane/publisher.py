"""The table publisher: holds the current Table, swaps it atomically and wakes long-poll waiters.

Readers call `current()` (one attribute read, no lock: the Table is immutable). `wait_newer()` parks on
one shared future per event loop, so a thousand long-polls cost one wake-up each, not a thousand timers
re-checking. `publish()` may be called from any thread; waiters on other loops are woken thread-safely.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from controlplane.table import Table

__all__ = ["TablePublisher", "TableSubscriber"]

TableSubscriber = Callable[[Table], None]

_log = logging.getLogger(__name__)


class TablePublisher:
    """Implements controlplane.seams.TableSource. Versions only go up."""

    def __init__(self, initial: Table) -> None:
        self._current = initial
        self._subscribers: list[TableSubscriber] = []
        self._waiters: dict[asyncio.AbstractEventLoop, asyncio.Future[None]] = {}
        self._lock = threading.Lock()  # guards _waiters and the version check, never held by readers

    def current(self) -> Table:
        """The published table (lock-free)."""
        return self._current

    @property
    def version(self) -> int:
        return self._current.version

    def subscribe(self, fn: TableSubscriber) -> Callable[[], None]:
        """Call `fn(table)` synchronously on every publish (it must not block). Returns an unsubscribe."""
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    def publish(self, table: Table) -> None:
        """Make `table` current, then notify subscribers and wake waiters. A version that does not go up
        is a bug upstream (stale data republished as new) and raises ValueError."""
        with self._lock:
            if table.version <= self._current.version:
                raise ValueError(
                    f"table version {table.version} is not newer than the published version {self._current.version}"
                )
            self._current = table
            waiters, self._waiters = self._waiters, {}
        for loop, fut in waiters.items():
            _wake(loop, fut)
        for fn in list(self._subscribers):
            try:
                fn(table)
            except Exception:  # one broken subscriber must not stop the others or the pipeline
                _log.exception("table subscriber %r failed on version %d", fn, table.version)

    async def wait_newer(self, version: int, timeout: float) -> Table | None:
        """Return the current table as soon as its version is > `version`; None after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while True:
            cur = self._current
            if cur.version > version:
                return cur
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            with self._lock:
                if self._current.version > version:
                    continue  # published between the check and the lock
                fut = self._waiters.get(loop)
                if fut is None or fut.done():
                    fut = self._waiters[loop] = loop.create_future()
            try:
                # shield: a waiter timing out must not cancel the future other waiters share
                async with asyncio.timeout(remaining):
                    await asyncio.shield(fut)
            except TimeoutError:
                cur = self._current
                return cur if cur.version > version else None


def _wake(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> None:
    def set_done() -> None:
        if not fut.done():
            fut.set_result(None)

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        set_done()
        return
    try:
        loop.call_soon_threadsafe(set_done)
    except RuntimeError:
        pass  # that loop is closed: nobody is waiting on it any more
