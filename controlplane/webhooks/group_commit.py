"""Group commit: writes asked for while one is under way go together in the next one (one transaction, many workers).

The dispatcher's endpoint workers each claim a delivery before sending it and record what the send did; with
many endpoints busy at once, one transaction per worker and step would cost a database round trip each. Here
the first caller starts a flusher that runs `write` (blocking SQL, in a thread) on everything queued so far and
keeps going until the queue is empty; each caller awaits its own item's result (or the write's exception).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """`write(items)` returns one result per item, in order; it runs in a worker thread, one batch at a time."""

    def __init__(self, write: Callable[[list[T]], list[R]]) -> None:
        self._write = write
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flushing = False

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue `item` for the next write; the future holds its result, or the exception the write raised."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, fut))
        if not self._flushing:
            self._flushing = True
            loop.create_task(self._flush())
        return fut

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await asyncio.to_thread(self._write, [item for item, _ in batch])
                except BaseException as exc:
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(exc if isinstance(exc, Exception) else RuntimeError("write cancelled"))
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, f), result in zip(batch, results, strict=True):
                    if not f.done():
                        f.set_result(result)
        finally:
            self._flushing = False
