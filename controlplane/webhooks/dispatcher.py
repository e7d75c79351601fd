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
- Scale-out: with a `write_fence` (the leader's term, controlplane/fencing.py) every attempt is claimed in a
  transaction that checks the lease before the POST, and its outcome is recorded under the same check. A
  deposed leader (partitioned or paused while it still believes it leads) has its claims refused, so it sends
  nothing more, and an attempt in flight when the term ended has its outcome refused, so the new leader sends
  that message again with the same `webhook-id` (at least once, as after a crash). The local lease check
  (`fence`) is also made right before each POST: it catches a pause between the claim and the send.

The SQL side (due heads, batches, recording outcomes, disabling endpoints) is controlplane/webhooks/queue.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import Engine

from controlplane import tracing
from controlplane.clock import Clock
from controlplane.config import WebhookConfig
from controlplane.events import Event
from controlplane.fencing import Fenced, LeaseFence
from controlplane.metrics import Metrics
from controlplane.webhooks.group_commit import GroupCommit
from controlplane.webhooks.queue import AttemptResult, Claim, DeliveryQueue, DisabledEndpoint, Job, Outcome, Record
from controlplane.webhooks.retry import RETRY_SCHEDULE, retry_delay
from controlplane.webhooks.signing import signed_headers
from controlplane.webhooks.urls import GuardedResolver, WebhookUrlError, validate_url

__all__ = ["RETRY_SCHEDULE", "retry_delay", "Dispatcher", "AttemptResult"]

log = logging.getLogger("turnout.webhooks")
_MAX_ERROR = 300  # stored error text is short and never contains request headers (the signature)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


AppendEvents = Callable[[list[Event]], Awaitable[list[Event]]]


class Dispatcher:
    """Delivers the outbox. `tick()` delivers everything due now (tests); `run()` is the service loop."""

    def __init__(
        self,
        *,
        engine: Engine,
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
        fence: Callable[[], bool] | None = None,
        write_fence: LeaseFence | None = None,
    ) -> None:
        # Scale-out: checked before every send; False once this replica's leader lease is no longer held, so a
        # deposed leader never sends while its successor does (the lease lapses here before it can be taken).
        self._fence = fence
        # Scale-out: the database's check of the same lease, in the transaction of every claim and outcome. Needed
        # beside `fence` because a paused or partitioned leader can believe its lease for longer than it holds it.
        self._write_fence = write_fence
        self._fenced_logged = False
        self._clock = clock
        # A callable follows config reloads (the runtime passes `lambda: rt.config.webhooks`).
        self._config = config if callable(config) else (lambda: config)
        self._append_events = append_events
        self._rng = rng if rng is not None else random.Random()
        self._sem = asyncio.Semaphore(concurrency)
        self._batch = batch
        self._poll = poll_interval
        self._http = http
        self.queue = DeliveryQueue(
            engine,
            clock,
            self._config,
            rng=self._rng,
            batch=batch,
            schedule=tuple(schedule) if schedule is not None else None,  # None: config.webhooks.retry_schedule
            metrics=metrics,
            fence=write_fence,
        )
        self._own_http = http is None
        self._workers: dict[str, asyncio.Task[None]] = {}
        # Group commit: what the workers ask for while a write is under way goes in the next transaction together,
        # so many endpoints share one commit, and one send's outcome shares it with the claim of the next.
        self._writes: GroupCommit[Claim | Record, Outcome] = GroupCommit(self.queue.write)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def config(self) -> WebhookConfig:
        return self._config()

    # -- lifecycle --------------------------------------------------------------------------
    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.config.allow_private_networks), limit=0)
            self._http = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.config.timeout)
            )
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
                    self._spawn_due(await self._find_due())
                    due_in = await asyncio.to_thread(self.queue.seconds_to_next_due)
                    sleep = self._poll if due_in is None else due_in
                except Exception:  # a store hiccup must not end webhook delivery for good
                    log.exception("webhook dispatch pass failed; retrying")
                    sleep = self._poll
                # Due heads already being worked on wake us when their worker ends; otherwise sleep to the next due.
                timeout = self._poll if sleep <= 0 else min(self._poll, sleep)
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as the wake fires.
                try:
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            await self.close()

    async def tick(self) -> int:
        """Deliver everything due at the clock's current time; return the number of attempts made."""
        self._loop = asyncio.get_running_loop()
        before = self._attempts_made
        self._spawn_due(await self._find_due())
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)
        return self._attempts_made - before

    _attempts_made = 0

    # -- workers ----------------------------------------------------------------------------
    async def _find_due(self) -> dict[str, list[Job]]:
        return await asyncio.to_thread(self.queue.due_heads, frozenset(self._workers))

    def _spawn_due(self, due: dict[str, list[Job]]) -> None:
        for ep_id, first in due.items():
            if ep_id in self._workers:
                continue
            task = asyncio.get_running_loop().create_task(self._drain_endpoint(ep_id, first), name=f"webhook:{ep_id}")
            self._workers[ep_id] = task
            task.add_done_callback(functools.partial(self._worker_done, ep_id))

    def _worker_done(self, ep_id: str, task: asyncio.Task[None]) -> None:
        if self._workers.get(ep_id) is task:
            del self._workers[ep_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook worker for %s failed: %r", ep_id, task.exception())
        self._wake.set()  # more may have arrived while this endpoint was busy

    async def _drain_endpoint(self, endpoint_id: str, first: list[Job] | None = None) -> None:
        """Deliver this endpoint's pending rows in order until one fails, none is due, or none is left.

        Successes are recorded by group commit without waiting (the next send starts at once); a failure
        waits for its record. Everything outstanding is recorded before the next batch is read, so a row
        is never read back as pending after it was delivered (in this process). A claim or record refused
        by the fence ends the worker and leaves this endpoint's rows pending for the leader that holds the lease.
        """
        try:
            await self._drain(endpoint_id, first)
        except Fenced as exc:
            self._paused(f"the database refused it ({exc.cause}); the leader that holds the lease sends the rest")

    def _paused(self, why: str) -> None:
        if not self._fenced_logged:
            log.warning("webhook delivery paused: %s", why)
            self._fenced_logged = True

    def _leads(self) -> bool:
        """The local lease check (scale-out); always True in one process."""
        if self._fence is None or self._fence():
            return True
        self._paused("this replica no longer holds the leader lease")
        return False

    async def _drain(self, endpoint_id: str, first: list[Job] | None) -> None:
        while True:
            jobs, first = (
                (first, None)
                if first is not None
                else (await asyncio.to_thread(self.queue.load_batch, endpoint_id), None)
            )
            outstanding: list[asyncio.Future[Outcome]] = []
            stop = False
            try:
                for job in jobs:
                    if job.next_attempt_at > self._clock.wall().timestamp():
                        stop = True
                        break
                    if not self._leads():
                        stop = True
                        break
                    if self._write_fence is not None:
                        # Fenced propagates: this term is over, nothing more leaves from here.
                        claimed, _ = await self._writes.submit(Claim(job))
                        if not claimed:
                            continue  # no longer pending (deleted, or dead/delivered meanwhile): nothing to send
                        if not self._leads():  # the process may have been paused during the claim
                            stop = True
                            break
                    self._fenced_logged = False
                    result = await self.attempt(job.url, job.id, job.secret, job.payload.encode())
                    self._attempts_made += 1
                    recorded = self._writes.submit(Record(job, result))
                    outstanding.append(recorded)
                    if not result.ok:
                        proceed, _ = await asyncio.shield(recorded)
                        if not proceed:
                            stop = True
                            break
            finally:
                for _proceed, disabled in await asyncio.gather(*outstanding):
                    if disabled is not None:
                        await self._emit_disabled(disabled)
            if stop or len(jobs) < self._batch:
                return

    async def attempt(self, url: str, msg_id: str, secret: str, body: bytes) -> AttemptResult:
        """One signed POST; never raises for receiver or network faults (they come back as the result)."""
        if tracing.tracer() is None:
            return await self._attempt(url, msg_id, secret, body, {})
        # One CLIENT span per delivery attempt; the receiver gets its traceparent. Only the origin is recorded:
        # a receiver's path or query can hold its own token.
        span = tracing.client_span(
            "webhook deliver", None, {"server.address": _origin(url), "turnout.webhook.message_id": msg_id}
        )
        trace_headers: dict[str, str] = {}
        tracing.inject(span, trace_headers)
        try:
            result = await self._attempt(url, msg_id, secret, body, trace_headers)
            if result.status is not None:
                span.set_attribute("http.response.status_code", result.status)
            if not result.ok:
                tracing.failed(span, "http_error" if result.status else "delivery_failed", result.error or "")
            return result
        finally:
            span.end()

    async def _attempt(
        self, url: str, msg_id: str, secret: str, body: bytes, trace_headers: dict[str, str]
    ) -> AttemptResult:
        started = asyncio.get_running_loop().time()

        def done(ok: bool, status: int | None, error: str | None) -> AttemptResult:
            if error:
                # A receiver's path or query can hold its own token: stored errors and events name only the origin.
                error = error.replace(url, _origin(url))[:_MAX_ERROR]
            return AttemptResult(ok, status, error or None, asyncio.get_running_loop().time() - started)

        try:
            validate_url(url, self.config.allow_private_networks)  # literal IPs skip the resolver
        except WebhookUrlError as exc:
            return done(False, None, f"refused: {exc.problem}")
        headers = signed_headers(secret, msg_id, int(self._clock.wall().timestamp()), body)
        headers.update(trace_headers)
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

    async def _emit_disabled(self, info: DisabledEndpoint) -> None:
        log.warning(
            "webhook endpoint %s disabled after %d dead deliveries", info["endpoint_id"], info["consecutive_failures"]
        )
        if self._append_events is None:
            return
        event = Event(
            type="webhook.endpoint_disabled", at=self._clock.wall(), subject=info["endpoint_id"], data=dict(info)
        )
        try:
            await self._append_events([event])
        except Exception:  # the endpoint stays disabled either way; the event is informative
            log.exception("could not record webhook.endpoint_disabled for %s", info["endpoint_id"])
