"""The webhook dispatcher: delivers pending outbox rows at least once, in order per endpoint.

- Per-endpoint ordering: an endpoint's deliveries go strictly in `seq` order; a failing head waits for its
  retry and holds the ones behind it (other endpoints are unaffected: one worker task per endpoint).
- Retries follow a Svix-like schedule (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; configurable as
  `webhooks.retry_schedule`) with ±20 % jitter; after `config.webhooks.max_attempts` the delivery is `dead`. `disable_after_failures` dead
  deliveries in a row disable the endpoint and emit `webhook.endpoint_disabled`.
- Every attempt carries the same `webhook-id`, so a crash between sending and recording only produces a
  duplicate that receivers drop. Times come from the injected clock: tests advance it and call `tick()`.
- Destinations are re-checked at each attempt (literal addresses here, resolved names in GuardedResolver);
  redirects are not followed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from controlplane.clock import Clock
from controlplane.config import WebhookConfig
from controlplane.events import Event
from controlplane.metrics import Metrics
from controlplane.webhooks.models import DEAD, DELIVERED, PENDING, WebhookDelivery, WebhookEndpoint
from controlplane.webhooks.signing import signed_headers
from controlplane.webhooks.urls import GuardedResolver, WebhookUrlError, validate_url

__all__ = ["RETRY_SCHEDULE", "retry_delay", "Dispatcher", "AttemptResult"]

log = logging.getLogger("turnout.webhooks")

# Seconds before attempt n+1 (index n-1 = after the n-th failure); Svix's published schedule.
RETRY_SCHEDULE: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
JITTER = 0.2
_MAX_ERROR = 300  # stored error text is short and never contains request headers (the signature)


def retry_delay(failed_attempts: int, rng: random.Random, schedule: Sequence[float] = RETRY_SCHEDULE) -> float:
    """Delay before the next attempt after `failed_attempts` failures (≥ 1), with ±20 % jitter."""
    base = schedule[min(failed_attempts, len(schedule)) - 1]
    return base * (1.0 + JITTER * (2.0 * rng.random() - 1.0))


@dataclass(frozen=True, slots=True)
class AttemptResult:
    ok: bool
    status: int | None
    error: str | None
    duration_s: float


@dataclass(frozen=True, slots=True)
class _Job:
    seq: int
    id: str
    endpoint_id: str
    url: str
    secret: str
    payload: str
    attempts: int
    next_attempt_at: float
    created_at: float


AppendEvents = Callable[[list[Event]], Awaitable[list[Event]]]


class Dispatcher:
    """Delivers the outbox. `tick()` delivers everything due now (tests); `run()` is the service loop."""

    def __init__(
        self,
        *,
        engine: Any,
        clock: Clock,
        config: WebhookConfig | Callable[[], WebhookConfig],
        metrics: Metrics | None = None,
        append_events: AppendEvents | None = None,
        rng: random.Random | None = None,
        concurrency: int = 64,
        batch: int = 200,
        poll_interval: float = 1.0,
        http: aiohttp.ClientSession | None = None,
        schedule: Sequence[float] | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        # A callable follows config reloads (the runtime passes `lambda: rt.config.webhooks`).
        self._config = config if callable(config) else (lambda: config)
        self._metrics = metrics
        self._append_events = append_events
        self._rng = rng if rng is not None else random.Random()
        self._sem = asyncio.Semaphore(concurrency)
        self._batch = batch
        self._poll = poll_interval
        self._http = http
        self._schedule = tuple(schedule) if schedule is not None else None  # None: config.webhooks.retry_schedule
        self._own_http = http is None
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def config(self) -> WebhookConfig:
        return self._config()

    # -- lifecycle --------------------------------------------------------------------------
    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.config.allow_private_networks), limit=0)
            self._http = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=self.config.timeout))
        return self._http

    def wake(self) -> None:
        """Ask the loop to look for work now; safe from any thread (the outbox calls it after commit)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._wake.set)

    async def close(self) -> None:
        for task in list(self._workers.values()):
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()
        if self._http is not None and self._own_http:
            await self._http.close()
            self._http = None

    async def run(self) -> None:
        """Deliver until cancelled. Never dies on a bad tick: logs it and tries again after the poll interval."""
        self._loop = asyncio.get_running_loop()
        try:
            while True:
                self._wake.clear()
                try:
                    self._spawn_due(await asyncio.to_thread(self._due_heads))
                    sleep = await asyncio.to_thread(self._seconds_to_next_due)
                except Exception:  # a store hiccup must not end webhook delivery for good
                    log.exception("webhook dispatch pass failed; retrying")
                    sleep = self._poll
                # Due heads already being worked on wake us when their worker ends; otherwise sleep to the next due.
                timeout = self._poll if sleep <= 0 else min(self._poll, sleep)
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
                except TimeoutError:
                    pass
        finally:
            await self.close()

    async def tick(self) -> int:
        """Deliver everything due at the clock's current time; return the number of attempts made."""
        self._loop = asyncio.get_running_loop()
        before = self._attempts_made
        self._spawn_due(await asyncio.to_thread(self._due_heads))
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)
        return self._attempts_made - before

    _attempts_made = 0

    # -- queue queries (run in a thread) ------------------------------------------------------
    def _due_heads(self) -> list[str]:
        """Enabled endpoints whose oldest pending delivery is due now; also refreshes the queue gauge."""
        now = self._clock.wall().timestamp()
        with Session(self._engine) as s:
            heads = (
                select(WebhookDelivery.endpoint_id, func.min(WebhookDelivery.seq).label("head"))
                .where(WebhookDelivery.status == PENDING)
                .group_by(col(WebhookDelivery.endpoint_id))
                .subquery()
            )
            rows = s.exec(
                select(WebhookDelivery.endpoint_id)
                .join(heads, col(WebhookDelivery.seq) == heads.c.head)
                .join(WebhookEndpoint, col(WebhookEndpoint.id) == WebhookDelivery.endpoint_id)
                .where(WebhookEndpoint.enabled == True, WebhookDelivery.next_attempt_at <= now)  # noqa: E712
            ).all()
            if self._metrics is not None:
                depth = s.exec(select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == PENDING)).one()
                self._metrics.webhook_queue_depth.set(depth)
        return list(rows)

    def _seconds_to_next_due(self) -> float:
        with Session(self._engine) as s:
            nxt = s.exec(
                select(func.min(WebhookDelivery.next_attempt_at))
                .join(WebhookEndpoint, col(WebhookEndpoint.id) == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.status == PENDING, WebhookEndpoint.enabled == True)  # noqa: E712
            ).one()
        return self._poll if nxt is None else float(nxt) - self._clock.wall().timestamp()

    def _load_batch(self, endpoint_id: str) -> list[_Job]:
        with Session(self._engine) as s:
            ep = s.get(WebhookEndpoint, endpoint_id)
            if ep is None or not ep.enabled:
                return []
            rows = s.exec(
                select(WebhookDelivery)
                .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == PENDING)
                .order_by(col(WebhookDelivery.seq))
                .limit(self._batch)
            ).all()
            return [
                _Job(
                    seq=int(r.seq or 0), id=r.id, endpoint_id=ep.id, url=ep.url, secret=ep.secret, payload=r.payload,
                    attempts=r.attempts, next_attempt_at=r.next_attempt_at, created_at=r.created_at,
                )
                for r in rows
            ]

    # -- workers ----------------------------------------------------------------------------
    def _spawn_due(self, endpoint_ids: list[str]) -> None:
        for ep_id in endpoint_ids:
            if ep_id in self._workers:
                continue
            task = asyncio.get_running_loop().create_task(self._drain_endpoint(ep_id), name=f"webhook:{ep_id}")
            self._workers[ep_id] = task
            task.add_done_callback(lambda t, ep_id=ep_id: self._worker_done(ep_id, t))

    def _worker_done(self, ep_id: str, task: asyncio.Task[None]) -> None:
        if self._workers.get(ep_id) is task:
            del self._workers[ep_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook worker for %s failed: %r", ep_id, task.exception())
        self._wake.set()  # more may have arrived while this endpoint was busy

    async def _drain_endpoint(self, endpoint_id: str) -> None:
        """Deliver this endpoint's pending rows in order until one fails, none is due, or none is left."""
        while True:
            jobs = await asyncio.to_thread(self._load_batch, endpoint_id)
            for job in jobs:
                if job.next_attempt_at > self._clock.wall().timestamp():
                    return
                result = await self.attempt(job.url, job.id, job.secret, job.payload.encode())
                self._attempts_made += 1
                proceed, disabled = await asyncio.to_thread(self._record, job, result)
                if disabled is not None:
                    await self._emit_disabled(disabled)
                if not proceed:
                    return
            if len(jobs) < self._batch:
                return

    async def attempt(self, url: str, msg_id: str, secret: str, body: bytes) -> AttemptResult:
        """One signed POST; never raises for receiver or network faults (they come back as the result)."""
        started = asyncio.get_running_loop().time()

        def done(ok: bool, status: int | None, error: str | None) -> AttemptResult:
            return AttemptResult(ok, status, error[:_MAX_ERROR] if error else None, asyncio.get_running_loop().time() - started)

        try:
            validate_url(url, self.config.allow_private_networks)  # literal IPs skip the resolver
        except WebhookUrlError as exc:
            return done(False, None, f"refused: {exc.problem}")
        headers = signed_headers(secret, msg_id, int(self._clock.wall().timestamp()), body)
        async with self._sem:
            try:
                async with self._session().post(url, data=body, headers=headers, allow_redirects=False) as resp:
                    await resp.content.read(64 * 1024)  # drain a little so the connection can be reused
                    if 200 <= resp.status < 300:
                        return done(True, resp.status, None)
                    why = "redirect not followed" if 300 <= resp.status < 400 else "non-2xx response"
                    return done(False, resp.status, f"HTTP {resp.status} ({why})")
            except TimeoutError:
                return done(False, None, f"timeout after {self.config.timeout:g}s")
            except aiohttp.ClientConnectorError as exc:
                return done(False, None, f"connect: {exc.os_error or exc}")
            except aiohttp.ClientError as exc:
                return done(False, None, f"{type(exc).__name__}: {exc}")
            except OSError as exc:
                return done(False, None, f"connect: {exc}")

    def _record(self, job: _Job, result: AttemptResult) -> tuple[bool, dict[str, Any] | None]:
        """Store one attempt's outcome. Returns (continue with the next delivery?, disabled-endpoint info)."""
        now = self._clock.wall().timestamp()
        attempts = job.attempts + 1
        m = self._metrics
        disabled: dict[str, Any] | None = None
        with Session(self._engine) as s:
            q = update(WebhookDelivery).where(col(WebhookDelivery.seq) == job.seq)
            if result.ok:
                s.execute(q.values(status=DELIVERED, attempts=attempts, delivered_at=now, last_status_code=result.status, last_error=None))
                s.execute(
                    update(WebhookEndpoint)
                    .where(col(WebhookEndpoint.id) == job.endpoint_id, col(WebhookEndpoint.consecutive_failures) != 0)
                    .values(consecutive_failures=0)
                )
                s.commit()
                if m is not None:
                    m.webhook_deliveries_total.labels(outcome="delivered").inc()
                    m.webhook_delivery_seconds.observe(max(0.0, now - job.created_at))
                return True, None
            if attempts < self.config.max_attempts:
                schedule = self._schedule or tuple(getattr(self.config, "retry_schedule", RETRY_SCHEDULE))
                nxt = now + retry_delay(attempts, self._rng, schedule)
                s.execute(q.values(attempts=attempts, next_attempt_at=nxt, last_status_code=result.status, last_error=result.error))
                s.commit()
                if m is not None:
                    m.webhook_deliveries_total.labels(outcome="failed").inc()
                return False, None
            s.execute(q.values(status=DEAD, attempts=attempts, last_status_code=result.status, last_error=result.error))
            ep = s.get(WebhookEndpoint, job.endpoint_id)
            if ep is not None:
                ep.consecutive_failures += 1
                if ep.enabled and ep.consecutive_failures >= self.config.disable_after_failures:
                    ep.enabled = False
                    ep.disabled_reason = f"{ep.consecutive_failures} deliveries in a row failed every attempt; last: {result.error}"
                    disabled = {"endpoint_id": ep.id, "consecutive_failures": ep.consecutive_failures, "last_error": result.error}
                s.add(ep)
            s.commit()
        if m is not None:
            m.webhook_deliveries_total.labels(outcome="dead").inc()
        log.warning("webhook delivery %s to %s is dead after %d attempts: %s", job.id, job.endpoint_id, attempts, result.error)
        return disabled is None, disabled

    async def _emit_disabled(self, info: dict[str, Any]) -> None:
        log.warning("webhook endpoint %s disabled after %d dead deliveries", info["endpoint_id"], info["consecutive_failures"])
        if self._append_events is None:
            return
        event = Event(type="webhook.endpoint_disabled", at=self._clock.wall(), subject=str(info["endpoint_id"]), data=info)
        try:
            await self._append_events([event])
        except Exception:  # the endpoint stays disabled either way; the event is informative
            log.exception("could not record webhook.endpoint_disabled for %s", info["endpoint_id"])
