"""`turnout traffic`: steady client traffic through a running data plane, with counters printed as it goes.

The quickstart's third terminal: with `turnout sim` and `turnout serve` running, live outcomes reach the table
at once, so the simulator's timeline faults are acted on within seconds (without traffic, faults that only
completions see wait for the next completion probe). The clients are the official `openai` SDK with only
`base_url` changed (controlplane/demo/traffic.py, the same generator `turnout demo` uses); the SDK's own
retries are off, so every error a user's application would see is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import openai

from controlplane.demo.traffic import ClientStats, Traffic

__all__ = ["add_parser", "TrafficOptions", "run_traffic", "counters_line", "DEFAULT_DATA_URL"]

DEFAULT_DATA_URL = "http://127.0.0.1:8700/v1"


@dataclass(frozen=True)
class TrafficOptions:
    url: str = DEFAULT_DATA_URL
    routes: tuple[str, ...] = ()  # empty: every route the data plane lists at /v1/models
    workers: int = 2  # concurrent clients per route (half of them stream)
    pause: float = 0.2  # seconds between one client's requests
    requests: int | None = None  # stop after this many requests in all
    duration: float | None = None  # stop after this many seconds
    every: float = 5.0  # seconds between two counter lines
    api_key: str = "turnout-traffic"  # a client key when the data plane requires one


def _ms(v: float | None) -> str:
    return f"{v * 1000:.0f} ms" if v is not None else "-"


def counters_line(elapsed: float, total: ClientStats) -> str:
    """`12 s  requests 96  errors 0  failovers 3  p50 45 ms  p95 110 ms  served by a/m 60, b/m 36`."""
    served = ", ".join(f"{t} {n}" for t, n in total.by_target.most_common(4)) or "-"
    return (
        f"{elapsed:5.0f} s  requests {total.requests}  errors {total.errors}  failovers {total.failovers}"
        f"  p50 {_ms(total.p50)}  p95 {_ms(total.p95)}  served by {served}"
    )


async def _routes(url: str, api_key: str) -> list[str]:
    client = openai.AsyncOpenAI(base_url=url, api_key=api_key, max_retries=0, timeout=10.0)
    try:
        return [m.id async for m in client.models.list()]
    finally:
        await client.close()


async def run_traffic(opts: TrafficOptions, emit: Callable[[str], None]) -> ClientStats:
    """Send traffic until `requests`, `duration` or cancellation; print a counter line every `every` seconds."""
    routes = list(opts.routes) or await _routes(opts.url, opts.api_key)
    if not routes:
        raise ValueError(f"{opts.url}/models lists no routes; pass --route NAME")
    traffic = Traffic(
        opts.url, routes, workers=opts.workers, pause=opts.pause, api_key=opts.api_key, limit=opts.requests
    )
    emit(f"sending to {opts.url}: routes {', '.join(routes)}, {opts.workers} clients each (Ctrl-C stops)")
    started = time.monotonic()
    traffic.start()
    done = asyncio.ensure_future(traffic.wait())
    try:
        while not done.done():
            left = None if opts.duration is None else opts.duration - (time.monotonic() - started)
            if left is not None and left <= 0:
                break
            step = opts.every if left is None else min(opts.every, left)
            await asyncio.wait({done}, timeout=step)
            emit(counters_line(time.monotonic() - started, traffic.total))
    finally:
        await traffic.stop()
        done.cancel()
    total = traffic.total
    for sample in total.error_samples:
        emit(f"  error: {sample}")
    return total


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("traffic", help="send steady client traffic through a running data plane and print counters")
    p.add_argument("--url", default=os.environ.get("TURNOUT_DATA_URL", DEFAULT_DATA_URL), help="data plane /v1 base")
    p.add_argument("--route", action="append", default=[], help="route to call (repeatable; default: every route)")
    p.add_argument("--workers", type=_positive(int), default=2, help="concurrent clients per route (default 2)")
    p.add_argument("--pause", type=_positive(float), default=0.2, help="seconds between a client's requests")
    p.add_argument("--requests", type=_positive(int), default=None, help="stop after this many requests")
    p.add_argument("--duration", type=_positive(float), default=None, help="stop after this many seconds")
    p.add_argument("--every", type=_positive(float), default=5.0, help="seconds between counter lines (default 5)")
    p.add_argument(
        "--api-key",
        default=os.environ.get("TURNOUT_CLIENT_KEY", "turnout-traffic"),
        help="client key for the data plane (default: $TURNOUT_CLIENT_KEY)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    opts = TrafficOptions(
        url=args.url.rstrip("/"),
        routes=tuple(args.route),
        workers=int(args.workers),
        pause=float(args.pause),
        requests=int(args.requests) if args.requests else None,
        duration=args.duration,
        every=float(args.every),
        api_key=args.api_key,
    )
    try:
        total = asyncio.run(run_traffic(opts, lambda line: print(line, flush=True)))
    except KeyboardInterrupt:
        return 130
    except (openai.APIConnectionError, ValueError) as exc:
        print(f"error: cannot send traffic to {opts.url}: {exc}; is `turnout serve` running? (--url)", file=sys.stderr)
        return 1
    except openai.APIStatusError as exc:
        print(f"error: {opts.url} answered {exc.status_code}: {exc.message[:200]}", file=sys.stderr)
        return 1
    print(f"done: {total.requests} requests, {total.errors} errors, {total.failovers} with failover", flush=True)
    return 0 if total.requests and total.errors < total.requests else 1
