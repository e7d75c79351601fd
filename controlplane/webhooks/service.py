"""Wiring the webhook outbox and dispatcher into a running control plane (what the runtime calls)."""

from __future__ import annotations

import asyncio
from typing import Any

from controlplane.events import Event
from controlplane.metrics import observe_event
from controlplane.webhooks.dispatcher import Dispatcher
from controlplane.webhooks.outbox import install_outbox

__all__ = ["start_dispatcher", "append_and_publish"]


async def append_and_publish(rt: Any, events: list[Event]) -> list[Event]:
    """Store events (the outbox hook queues their deliveries in the same transaction), then publish them."""
    stored: list[Event] = await asyncio.to_thread(rt.store.append_events, events)
    metrics = getattr(rt, "metrics", None)
    for ev in stored:
        if metrics is not None:
            observe_event(metrics, ev)
        rt.bus.publish(ev)
    return stored


def start_dispatcher(rt: Any, *, poll_interval: float = 1.0, **options: Any) -> asyncio.Task[None]:
    """Install the outbox hook on `rt.store` (idempotent) and start delivering; cancel the task to stop.

    Only the leader should run it (one dispatcher per store keeps per-endpoint order). Call it after the
    store schema exists; it creates the webhook tables itself if needed. `options` go to `Dispatcher`
    (tests shorten `schedule`).
    """
    outbox = install_outbox(rt.store, rt.clock)

    async def append(events: list[Event]) -> list[Event]:
        return await append_and_publish(rt, events)

    dispatcher = Dispatcher(
        engine=rt.store.engine,
        clock=rt.clock,
        config=lambda: rt.config.webhooks,
        metrics=getattr(rt, "metrics", None),
        append_events=append,
        poll_interval=poll_interval,
        **{"fence": getattr(rt, "leadership_fence", None), **options},
    )
    unhook = outbox.add_waker(dispatcher.wake)
    task = asyncio.get_running_loop().create_task(dispatcher.run(), name="turnout-webhook-dispatcher")
    task.add_done_callback(lambda _t: unhook())
    return task
