"""Hedged requests for tail latency: when the primary is slower than its recent p95, race the next target.

The primary attempt starts alone. If it has not produced a committable answer (first chunk, or the whole
JSON body) after `delay`, a second attempt starts on the next target; the first to answer wins and the
other is cancelled and closed. A cancelled loser is not an outcome: it reports nothing to the breakers.
A loser that *failed* before the winner answered is returned so the proxy reports it like any attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from dataplane.attempts import Opened, UpstreamAttempt

__all__ = ["HedgeResult", "hedged_open"]


@dataclass(slots=True)
class HedgeResult:
    winner: tuple[UpstreamAttempt, Opened] | None  # None: every started attempt failed
    failed: list[tuple[UpstreamAttempt, Opened]] = field(default_factory=list)  # in the order they failed
    hedged: bool = False  # a second attempt was started


async def hedged_open(first: UpstreamAttempt, start_second: Callable[[], UpstreamAttempt], delay: float) -> HedgeResult:
    """Open `first`; after `delay` without an answer also open the attempt `start_second()` makes; first ok wins."""
    t1 = asyncio.create_task(first.open())
    try:
        done, _ = await asyncio.wait({t1}, timeout=delay)
    except asyncio.CancelledError:
        await _cancel(t1, first)
        raise
    if done:
        opened = t1.result()
        return HedgeResult((first, opened)) if opened.ok else HedgeResult(None, [(first, opened)])
    second = start_second()
    t2 = asyncio.create_task(second.open())
    pending: dict[asyncio.Task[Opened], UpstreamAttempt] = {t1: first, t2: second}
    result = HedgeResult(None, hedged=True)
    try:
        while pending:
            done, _ = await asyncio.wait(pending.keys(), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                att = pending.pop(task)
                opened = task.result()
                if opened.ok and result.winner is None:
                    result.winner = (att, opened)
                elif opened.ok:
                    att.close()  # both answered in the same tick: keep one
                else:
                    result.failed.append((att, opened))
            if result.winner is not None:
                break
    finally:
        for task, att in pending.items():
            await _cancel(task, att)
    return result


async def _cancel(task: asyncio.Task[Opened], att: UpstreamAttempt) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    att.close()
