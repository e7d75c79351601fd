"""Steady client traffic through the data plane with the official `openai` SDK (only `base_url` changed),
and the client-side view of it: requests, errors, failovers inside requests, latency percentiles."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import openai
from openai.types.chat import ChatCompletionMessageParam

__all__ = ["ClientStats", "Traffic", "percentile"]

_PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "In one word: is the train on time?"}]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


@dataclass
class ClientStats:
    """What the clients saw. `failovers` counts requests that needed more than one upstream attempt."""

    requests: int = 0
    errors: int = 0
    failovers: int = 0
    by_target: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    failover_times: list[float] = field(default_factory=list)  # monotonic instants of in-request failovers
    _latencies: deque[float] = field(default_factory=lambda: deque(maxlen=500))  # recent window for p50/p95
    all_latencies: list[float] = field(default_factory=list)

    def record_ok(self, latency: float, target: str, attempts: int, now: float) -> None:
        self.requests += 1
        self._latencies.append(latency)
        self.all_latencies.append(latency)
        self.by_target[target] += 1
        if attempts > 1:
            self.failovers += 1
            self.failover_times.append(now)

    def record_error(self, what: str) -> None:
        self.requests += 1
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)

    @property
    def p50(self) -> float | None:
        return percentile(list(self._latencies), 0.5)

    @property
    def p95(self) -> float | None:
        return percentile(list(self._latencies), 0.95)


class Traffic:
    """`workers` concurrent clients per route, each sending one request after another (JSON and streaming
    alternately). `max_retries=0`: every failure the SDK sees is counted, none is hidden by client retries."""

    def __init__(
        self,
        base_url: str,
        routes: list[str],
        *,
        workers: int = 2,
        pause: float = 0.05,
        max_tokens: int = 8,
        api_key: str = "demo-client",
        limit: int | None = None,
    ) -> None:
        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=60.0)
        self.routes, self.workers, self.pause, self.max_tokens = routes, workers, pause, max_tokens
        self.limit = limit  # stop after this many requests in all (None: until stop())
        self._sent = 0
        self.stats: dict[str, ClientStats] = {r: ClientStats() for r in routes}
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    @property
    def total(self) -> ClientStats:
        out = ClientStats()
        for s in self.stats.values():
            out.requests += s.requests
            out.errors += s.errors
            out.failovers += s.failovers
            out.by_target.update(s.by_target)
            out.error_samples.extend(s.error_samples)
            out._latencies.extend(s._latencies)
            out.all_latencies.extend(s.all_latencies)
        return out

    def start(self) -> None:
        for route in self.routes:
            for i in range(self.workers):
                self._tasks.append(
                    asyncio.create_task(self._worker(route, stream=i % 2 == 1), name=f"demo-client-{route}-{i}")
                )

    async def wait(self) -> None:
        """Until the workers end by themselves (`limit` reached)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Let in-flight requests finish (they count), then close the client."""
        if self._stop.is_set() and not self._tasks:
            return  # already stopped (the runner stops traffic before the summary and again on exit)
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.client.close()

    async def _worker(self, route: str, *, stream: bool) -> None:
        stats = self.stats[route]
        while not self._stop.is_set():
            if self.limit is not None:
                if self._sent >= self.limit:
                    self._stop.set()
                    break
                self._sent += 1
            started = time.monotonic()
            try:
                target, attempts = await self._one(route, stream)
            except openai.APIError as exc:  # what a user's app would see: the demo's goal is zero of these
                stats.record_error(f"{route}: {type(exc).__name__}: {str(exc)[:160]}")
            else:
                now = time.monotonic()
                stats.record_ok(now - started, target, attempts, now)
            try:
                await asyncio.wait_for(self._stop.wait(), self.pause)
            except TimeoutError:
                pass

    async def _one(self, route: str, stream: bool) -> tuple[str, int]:
        raw = await self.client.chat.completions.with_raw_response.create(
            model=route,
            messages=_PROMPT,
            max_tokens=self.max_tokens,
            stream=stream,
        )
        target = raw.headers.get("x-turnout-target", "?")
        attempts = int(raw.headers.get("x-turnout-attempts", "1") or 1)
        parsed = raw.parse()
        if stream:
            async for _ in parsed:  # type: ignore[union-attr]
                pass
        return target, attempts
