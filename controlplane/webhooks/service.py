"""Wiring the webhook outbox and dispatcher into a running control plane (what the control plane calls)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from controlplane.clock import Clock
from controlplane.config import WebhookConfig
from controlplane.events import Event, EventBus
from controlplane.metrics import Metrics, observe_event
from controlplane.store import Store
from controlplane.webhooks.dispatcher import Dispatcher
from controlplane.webhooks.outbox import install_outbox

__all__ = ["start_dispatcher", "append_and_publish"]


async def append_and_publish(store: Store, bus: EventBus, metrics: Metrics | None, events: list[Event]) -> list[Event]:
    """Store events (the outbox hook queues their deliveries in the same transaction), then publish them."""
    stored: list[Event] = await asyncio.to_thread(store.append_events, events)
    for ev in stored:
        if metrics is not None:
            observe_event(metrics, ev)
        bus.publish(ev)
    return stored


def start_dispatcher(
    store: Store,
    bus: EventBus,
    clock: Clock,
    metrics: Metrics | None,
    config: Callable[[], WebhookConfig],
    *,
    fence: Callable[[], bool] | None = None,
    poll_interval: float = 1.0,
    schedule: Sequence[float] | None = None,
) -> asyncio.Task[None]:
    """Install the outbox hook on `store` (idempotent) and start delivering; cancel the task to stop.

    Only the leader should run it (one dispatcher per store keeps per-endpoint order); `fence` says whether this
    process still leads, and the store's own fence (`store.fence`, the leader's term) makes the database refuse
    this dispatcher's claims and outcomes once the term is over (controlplane/fencing.py). Call it after the
    store schema exists; it creates the webhook tables itself if needed.
    `config` is read per delivery round (reloads apply); tests shorten `schedule`.
    """
    outbox = install_outbox(store, clock)

    async def append(events: list[Event]) -> list[Event]:
        return await append_and_publish(store, bus, metrics, events)

    dispatcher = Dispatcher(
        engine=store.engine,
        clock=clock,
        config=config,
        metrics=metrics,
        append_events=append,
        poll_interval=poll_interval,
        schedule=schedule,
        fence=fence,
        write_fence=store.fence,
    )
    unhook = outbox.add_waker(dispatcher.wake)
    task = asyncio.get_running_loop().create_task(dispatcher.run(), name="turnout-webhook-dispatcher")
    task.add_done_callback(lambda _t: unhook())
    return task
