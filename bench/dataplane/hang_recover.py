"""The hang→recover phase of the data-plane bench: a primary that hangs, then answers again, under 20 clients.

Run through `turnout serve` with its probes on (completion and catalogue probes every `PROBE_INTERVAL_S`), as a
user with probes runs it: while a target is open only a probe that sees the opening signal (a completion probe,
for a hang) brings it back before its whole open duration (docs/breaker.md), so without probes the primary
could not come back within the window at all. Every request asks for its decision trail (`x-turnout-debug`), which
says per attempt whether it timed out and on which deadline (a learned one names itself in the detail), and
which target answered (`x-turnout-target`). Printed per commit, median over fresh processes (one per round, so
each starts closed at the first open level): requests held until a first-byte deadline and how long they waited,
the deadline in use (learned or configured), and the time from the primary's recovery to the first request it
answered again, with the primary's state moves from the event history. Never asserted: measurements.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from bench.dataplane.upstream import PROBE_PROMPT

__all__ = ["PROBE_INTERVAL_S", "PROBE_TIMEOUT_S", "HangRun", "probes_yaml", "hang_phase", "report"]

PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 10.0  # Turnout's default probe timeout, written out so the report can say it
CLIENTS = 20
_BODY = '{"model":"main","messages":[{"role":"user","content":"hi"}]}'
_HEADERS = {"content-type": "application/json", "x-turnout-debug": "true"}
_LEARNED = re.compile(r"learned first-byte deadline ([\d.]+)s")


def probes_yaml() -> str:
    """The `probes:` block of the phase's `turnout serve`: keys every commit since probes existed knows (an old rev
    compared with `--against` must read the same config)."""
    return (
        f"probes: {{interval: {PROBE_INTERVAL_S:g}s, timeout: {PROBE_TIMEOUT_S:g}s, "
        f"kinds: {{catalogue: {{}}, completion: {{}}, status_page: {{enabled: false}}}}, "
        f'completion: {{prompt: "{PROBE_PROMPT}"}}}}\n'
    )


@dataclass
class HangRun:
    """One hang→recover run against one fresh process."""

    primary: str = ""
    ok: int = 0
    errors: int = 0
    held: list[float] = field(default_factory=list)  # client-side wait of each request with a timed-out attempt
    learned: list[float] = field(default_factory=list)  # the deadline of each attempt cut by a learned deadline
    configured: int = 0  # attempts cut at the configured first_byte_timeout
    back_s: float | None = None  # recovery → the first request the primary answered again
    probes: int = 0  # completion probes that reached the primary during the phase
    moves: list[tuple[float, str]] = field(default_factory=list)  # the primary's state moves, s after recovery


def _timed_out(trail: dict[str, Any], run: HangRun) -> bool:
    """Count the trail's timed-out attempts on `run`; whether there was one."""
    held = False
    for a in trail.get("attempts", []):
        if a.get("error_class") == "deadline_cut":
            m = _LEARNED.search(a.get("detail") or "")
            if m:
                run.learned.append(float(m.group(1)))
            held = True
        elif a.get("error_class") == "timeout":
            run.configured += 1
            held = True
    return held


async def hang_phase(
    turnout: str, control: str, token: str, admin: dict[str, str], hang_s: float, after_s: float
) -> HangRun:
    """The primary (whichever target the warm-up's answers came from most; `admin` maps each target to its
    upstream's admin URL) hangs for `hang_s`, then answers again; `CLIENTS` clients throughout and `after_s` after."""
    url = f"{turnout}/v1/chat/completions"
    run = HangRun()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def post(path: str, doc: dict[str, str]) -> Any:
            async with s.post(path, json=doc) as r:
                return await r.json()

        async def get(path: str, **params: str) -> Any:
            async with s.get(path, params=params, headers={"Authorization": f"Bearer {token}"}) as r:
                return await r.json()

        for a in admin.values():
            await post(f"{a}/_admin/mode", {"mode": "ok"})
        answered: dict[str, int] = {}
        # Recent answers for the learned deadlines: the data plane's first-byte deadline and the probes' own
        # (probes/deadline.py wants 3 answers of a job; at a 1 s interval that is 4-5 s). A real target has
        # hours of them; a fresh process per round has none.
        warm_until = time.monotonic() + 5.0

        async def warm() -> None:
            while time.monotonic() < warm_until:
                async with s.post(url, data=_BODY, headers=_HEADERS) as r:
                    await r.read()
                    t = r.headers.get("x-turnout-target", "")
                    answered[t] = answered.get(t, 0) + 1

        await asyncio.gather(*(warm() for _ in range(CLIENTS)))
        run.primary = max((t for t in answered if t in admin), key=lambda t: answered[t])
        up = admin[run.primary]
        probes0 = (await get(f"{up}/_admin/stats"))["completion_probes"]
        await post(f"{up}/_admin/mode", {"mode": "hang"})
        end = time.monotonic() + hang_s + after_s
        recovered_at: float | None = None
        recovered_wall = 0.0

        async def client() -> None:
            while time.monotonic() < end:
                t0 = time.monotonic()
                async with s.post(url, data=_BODY, headers=_HEADERS) as r:
                    await r.read()
                    target = r.headers.get("x-turnout-target")
                    trail = json.loads(r.headers.get("x-turnout-decision", "{}"))
                now = time.monotonic()
                if r.status == 200:
                    run.ok += 1
                else:
                    run.errors += 1
                if _timed_out(trail, run):
                    run.held.append(now - t0)
                if r.status == 200 and target == run.primary and recovered_at is not None and run.back_s is None:
                    run.back_s = now - recovered_at

        async def recover() -> None:
            nonlocal recovered_at, recovered_wall
            await asyncio.sleep(hang_s)
            await post(f"{up}/_admin/mode", {"mode": "ok"})
            recovered_at, recovered_wall = time.monotonic(), time.time()

        await asyncio.gather(recover(), *(client() for _ in range(CLIENTS)))
        run.probes = (await get(f"{up}/_admin/stats"))["completion_probes"] - probes0
        page = await get(f"{control}/api/v1/events", type="target.state_changed", limit="1000")
    for e in page.get("events", []):
        if e.get("subject") == run.primary:
            at = datetime.fromisoformat(e["at"].replace("Z", "+00:00")).timestamp() - recovered_wall
            d = e.get("data", {})
            run.moves.append((at, f"{d.get('from')}→{d.get('to')} ({d.get('reason')})"))
    return run


def _median(vals: Sequence[float], fmt: str) -> str:
    return f"{statistics.median(vals):{fmt}} [{' '.join(f'{v:{fmt}}' for v in vals)}]"


def report(runs: dict[str, list[HangRun]], hang_s: float, after_s: float, first_byte_timeout_s: float) -> None:
    """Per commit label: the medians over its runs, per-run values in brackets, then each run's state moves."""
    print(
        f"  hang→recover through turnout serve with probes on (completion + catalogue every {PROBE_INTERVAL_S:g} s, "
        f"probe timeout {PROBE_TIMEOUT_S:g} s): the primary hangs {hang_s:g} s, then answers; {CLIENTS} clients, "
        f"{after_s:g} s after; a fresh process per round:"
    )
    for label, rs in runs.items():

        def back(r: HangRun) -> str:
            return f"{r.back_s:.1f}" if r.back_s is not None else f">{after_s:g}"

        backs = [r.back_s if r.back_s is not None else float("inf") for r in rs]
        median_back = statistics.median(backs)
        learned = [d for r in rs for d in r.learned]
        deadline = (
            f"learned {statistics.median(learned):.2f} s on {len(learned)} attempts"
            if learned
            else "no learned deadline cut"
        )
        print(f"    {label}:")
        print(
            f"      held until a deadline {_median([len(r.held) for r in rs], '.0f')} requests; waited median "
            f"{_median([statistics.median(r.held) if r.held else 0.0 for r in rs], '.2f')} s, max "
            f"{_median([max(r.held, default=0.0) for r in rs], '.2f')} s"
        )
        print(
            f"      deadline in use: {deadline}, configured first_byte_timeout {first_byte_timeout_s:g} s on "
            f"{sum(r.configured for r in rs)} attempts"
        )
        print(
            f"      back on the primary {median_back:.1f} s after it recovered [{' '.join(back(r) for r in rs)}]"
            if median_back != float("inf")
            else f"      back on the primary: not within {after_s:g} s [{' '.join(back(r) for r in rs)}]"
        )
        print(
            f"      ok {sum(r.ok for r in rs)}, errors {sum(r.errors for r in rs)}; completion probes that reached "
            f"the primary per run [{' '.join(str(r.probes) for r in rs)}]"
        )
        for i, r in enumerate(rs, 1):
            moves = ", ".join(f"{m} {at:+.1f} s" for at, m in r.moves) or "none"
            print(f"      round {i}, {r.primary}'s moves (s from its recovery): {moves}")
