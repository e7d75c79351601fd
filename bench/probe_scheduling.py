"""Bench: probe scheduling of 2,000 simulated targets at a 10 s interval (printed, not asserted).

Measures the share of one CPU core used and the start-time drift (actual start - planned start, p50/p99/max)
of the real ProbeScheduler (APScheduler AsyncIOScheduler, jittered trigger, semaphore, deadline, metrics)
over simulated probes that each take ~20-80 ms of awaited "network" time. The baseline, measured in the same
run, drives the same probes with bare `loop.call_at` timers: the difference is what scheduling costs.
Aims: < 25 % of one core and p99 drift < 250 ms.  `python -m bench probe_scheduling [--targets N] [--seconds S]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from collections.abc import Awaitable, Callable

from controlplane.clock import SystemClock
from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.domain import Observation, TargetRef
from controlplane.metrics import Metrics
from controlplane.scheduler import ProbeScheduler, first_delay
from probes import ProbeContext

__all__ = ["main"]


class _CountingSink:
    def __init__(self) -> None:
        self.count = 0

    def submit(self, obs: Observation) -> None:
        self.count += 1


async def _simulated_probe(target: TargetRef, ctx: ProbeContext) -> list[Observation]:
    await asyncio.sleep(random.uniform(0.02, 0.08))  # the upstream call's awaited time
    return [Observation.success(target.key, kind="completion", at=ctx.clock.wall(), latency_s=0.05)]


def _config(targets: int, interval: float, jitter: float) -> Config:
    per = 100
    providers = [
        {
            "id": f"p{i}",
            "adapter": "openai",
            "base_url": f"https://p{i}.example/v1",
            "models": [{"name": f"m{j}"} for j in range(min(per, targets - i * per))],
        }
        for i in range((targets + per - 1) // per)
    ]
    probes = {
        "interval": interval,
        "jitter": jitter,
        "timeout": 5,
        "concurrency": 256,
        "kinds": {
            "completion": {"interval": interval},
            "catalogue": {"enabled": False},
            "status_page": {"enabled": False},
        },
    }
    return parse_config(json.dumps({"providers": providers, "probes": probes}), env={})


# A measured variant: start(lags, sink) begins probing and returns the coroutine function that stops it.
Stop = Callable[[], Awaitable[None]]
Start = Callable[[list[float], "_CountingSink"], Awaitable[Stop]]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(run: Start, seconds: float, warmup: float) -> tuple[float, list[float], int]:
    """Run `run(lags)` for warmup + seconds; CPU share and lags counted after the warm-up only."""
    lags: list[float] = []
    sink = _CountingSink()
    stop = await run(lags, sink)
    await asyncio.sleep(warmup)
    lags.clear()
    probes_before = sink.count
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    probes = sink.count - probes_before
    await stop()
    return cpu, lags, probes


async def _baseline(cfg: Config, interval: float, jitter: float) -> Start:
    """Bare timers: each target re-arms `loop.call_at` with the same jitter; no semaphore, metrics or deadline."""
    loop = asyncio.get_running_loop()
    clock = SystemClock()
    handles: dict[str, asyncio.TimerHandle] = {}
    tasks: set[asyncio.Task[list[Observation]]] = set()
    live = True

    async def start(lags: list[float], sink: _CountingSink) -> Stop:
        ctx = ProbeContext(session=None, adapter=None, provider=cfg.providers[0], model=None, clock=clock, timeout=5)  # type: ignore[arg-type]

        def collect(task: asyncio.Task[list[Observation]]) -> None:
            tasks.discard(task)
            if not task.cancelled():
                for o in task.result():
                    sink.submit(o)

        def fire(t: TargetRef, planned: float) -> None:
            lags.append(max(0.0, loop.time() - planned))
            task = loop.create_task(_simulated_probe(t, ctx))
            tasks.add(task)
            task.add_done_callback(collect)
            if live:
                nxt = planned + interval * (1 + jitter * random.uniform(-1, 1))
                handles[t.key] = loop.call_at(nxt, fire, t, nxt)

        now = loop.time()
        for t in cfg.targets():
            planned = now + first_delay(f"completion:{t.key}", interval)
            handles[t.key] = loop.call_at(planned, fire, t, planned)

        async def stop() -> None:
            nonlocal live
            live = False
            for h in handles.values():
                h.cancel()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        return stop

    return start


async def _turnout(cfg: Config) -> Start:
    async def start(lags: list[float], sink: _CountingSink) -> Stop:
        sched = ProbeScheduler(
            cfg,
            SystemClock(),
            session=None,
            sink=sink,
            adapter_for=lambda p: None,  # type: ignore[arg-type, return-value]
            metrics=Metrics(),
            kinds={"completion": _simulated_probe},
            on_start=lambda key, lag: lags.append(lag),
        )
        sched.start()
        return sched.shutdown

    return start


def _report(name: str, cpu: float, lags: list[float], probes: int, seconds: float) -> None:
    ms = [x * 1000 for x in lags]
    print(
        f"  {name:<22} cpu {cpu * 100:5.1f} % of one core | probes/s {probes / seconds:7.1f} | start drift "
        f"p50 {_pct(ms, 0.5):6.1f} ms  p99 {_pct(ms, 0.99):6.1f} ms  max {max(ms, default=float('nan')):6.1f} ms"
        f"  (n={len(ms)}, mean {statistics.fmean(ms) if ms else float('nan'):.1f} ms)"
    )


async def _main(args: argparse.Namespace) -> None:
    cfg = _config(args.targets, args.interval, args.jitter)
    warmup = min(args.interval, 30.0) + 1  # every target has started once
    print(
        f"  {len(cfg.targets())} targets, interval {args.interval:g}s ±{args.jitter:.0%}, measured {args.seconds:g}s after {warmup:g}s warm-up"
    )
    base = await _measure(await _baseline(cfg, args.interval, args.jitter), args.seconds, warmup)
    _report("baseline (call_at)", *base, args.seconds)
    ours = await _measure(await _turnout(cfg), args.seconds, warmup)
    _report("turnout scheduler", *ours, args.seconds)
    cpu, lags, _ = ours
    verdict = "meets" if cpu < 0.25 and _pct(lags, 0.99) < 0.25 else "MISSES"
    print(
        f"  {verdict} the aims (< 25 % of one core, p99 drift < 250 ms); scheduling overhead over baseline: "
        f"{(cpu - base[0]) * 100:+.1f} points of one core"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="bench.probe_scheduling")
    p.add_argument("--targets", type=int, default=2000)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--jitter", type=float, default=0.2)
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args(argv or [])
    try:
        import uvloop
    except ImportError:
        asyncio.run(_main(args))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as `turnout serve` runs
        runner.run(_main(args))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
