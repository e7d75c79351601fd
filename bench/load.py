"""Load bench: many concurrent streaming clients through `turnout serve` against the provider simulator, while
the primary's provider is withdrawn mid-run (a region block). Prints, never asserts:

- client outcomes: complete streams, and errors split into those Turnout caused (non-200, an error event or a
  cut stream while another target could answer) and client-side ones (our own timeouts / connection limits);
- the Turnout process's resident memory and open file descriptors at the start and at the end of the run
  (from /proc), plus the peak seen while the clients were running;
- the table at the end (the withdrawn target must be out) and request latency percentiles.

`python -m bench load [--clients 500] [--seconds 30] [--withdraw-at 0.3]`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

__all__ = ["main"]

KEY = "sk-bench-load"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_stats(pid: int) -> tuple[float, int]:
    """(RSS in MiB, open file descriptors) of a process, from /proc."""
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def _sim_config() -> dict[str, Any]:
    # limits far above the load: a provider's own 429s would be its errors, not Turnout's
    fast = {
        "port": 0,
        "latency": "5ms",
        "ttft": "20ms",
        "token_rate": 300,
        "rate_limits": {"requests": 10**9, "tokens": 10**12},
    }
    return {
        "host": "127.0.0.1",
        "admin_port": 0,
        "seed": 1,
        "providers": [
            {"id": pid, "family": "openai", "api_key": KEY, **fast, "models": [{"name": "gpt-x"}]}
            for pid in ("pa", "pb", "pc")
        ],
    }


def _turnout_config(sim: Any, db: Path, control: int, data: int) -> dict[str, Any]:
    providers = sim.turnout_providers()
    for p in providers:
        p["api_key"] = "${BENCH_KEY}"
        p["models"][0]["priority"] = 5 if p["id"] == "pa" else 0  # pa is the primary the withdrawal hits
    return {
        "server": {"control": {"host": "127.0.0.1", "port": control}, "data": {"host": "127.0.0.1", "port": data}},
        "database": {"url": f"sqlite:///{db}"},
        "providers": providers,
        "routes": [{"name": "main", "targets": ["pa/gpt-x", "pb/gpt-x", "pc/gpt-x"]}],
        "probes": {
            "interval": "5s",
            "timeout": "3s",
            "kinds": {
                "catalogue": {"interval": "10s"},
                "completion": {"interval": "5s"},
                "status_page": {"enabled": False},
            },
        },
        "dataplane": {"first_byte_timeout": "5s", "stall_timeout": "5s", "total_timeout": "30s"},
    }


async def _client(http: aiohttp.ClientSession, url: str, until: float, out: dict[str, Any]) -> None:
    body = {"model": "main", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    while time.monotonic() < until:
        t0 = time.monotonic()
        try:
            async with http.post(f"{url}/chat/completions", json=body) as r:
                text = (await r.read()).decode(errors="replace")
                if r.status == 200 and "data: [DONE]" in text and '"error"' not in text:
                    out["ok"] += 1
                    out["latency"].append(time.monotonic() - t0)
                    out["targets"][r.headers.get("x-turnout-target", "?")] = (
                        out["targets"].get(r.headers.get("x-turnout-target", "?"), 0) + 1
                    )
                else:
                    out["turnout_errors"].append(f"{r.status} {text[-160:]!r}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            out["client_errors"].append(type(exc).__name__)


async def _ready(http: aiohttp.ClientSession, control: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            async with http.get(f"{control}/readyz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("turnout serve did not become ready")


async def _run(clients: int, seconds: float, withdraw_at: float, settle: float) -> None:
    from adapters.sim import Simulator

    sim = Simulator.from_yaml(_sim_config())
    await sim.start()
    tmp = Path(tempfile.mkdtemp(prefix="turnout-load-"))
    control_port, data_port = _free_port(), _free_port()
    cfg = tmp / "turnout.yaml"
    cfg.write_text(yaml.safe_dump(_turnout_config(sim, tmp / "turnout.db", control_port, data_port)))
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "controlplane.cli", "serve", "-c", str(cfg), "--role", "all"],
        cwd=tmp,
        env={**os.environ, "BENCH_KEY": KEY},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    control, data = f"http://127.0.0.1:{control_port}", f"http://127.0.0.1:{data_port}/v1"
    out: dict[str, Any] = {"ok": 0, "turnout_errors": [], "client_errors": [], "latency": [], "targets": {}}
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
            await _ready(http, control, time.monotonic() + 60)
            warm: dict[str, Any] = {"ok": 0, "turnout_errors": [], "client_errors": [], "latency": [], "targets": {}}
            await _client(http, data, time.monotonic() + 1.0, warm)
            rss0, fds0 = _proc_stats(proc.pid)
            until = time.monotonic() + seconds
            tasks = [asyncio.create_task(_client(http, data, until, out)) for _ in range(clients)]
            peak_rss, peak_fds = rss0, fds0
            withdrawn = False
            while not all(t.done() for t in tasks):
                await asyncio.sleep(0.5)
                rss, fds = _proc_stats(proc.pid)
                peak_rss, peak_fds = max(peak_rss, rss), max(peak_fds, fds)
                if not withdrawn and time.monotonic() >= until - seconds * (1 - withdraw_at):
                    sim.set_fault("pa", "region_blocked")
                    withdrawn = True
            await asyncio.gather(*tasks)
        await asyncio.sleep(1.0)  # idle keep-alive connections from the clients close
        rss1, fds1 = _proc_stats(proc.pid)
        if settle:
            await asyncio.sleep(settle)  # the data plane closes upstream connections idle for 30 s
        rss2, fds2 = _proc_stats(proc.pid)
        async with aiohttp.ClientSession() as http, http.get(f"{control}/api/v1/table") as r:
            table = await r.json()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        await sim.stop()

    lat = sorted(out["latency"])
    total = out["ok"] + len(out["turnout_errors"]) + len(out["client_errors"])
    print(f"clients {clients}, {seconds:g} s, provider pa withdrawn at {withdraw_at:.0%} of the run")
    print(f"  requests          {total}  ({total / seconds:.0f}/s)")
    print(f"  complete streams  {out['ok']}")
    print(
        f"  turnout errors    {len(out['turnout_errors'])}"
        + (f"  e.g. {out['turnout_errors'][:3]}" if out["turnout_errors"] else "")
    )
    print(
        f"  client errors     {len(out['client_errors'])}"
        + (f"  ({', '.join(sorted(set(out['client_errors'])))})" if out["client_errors"] else "")
    )
    if lat:
        print(
            f"  latency p50/p99   {statistics.median(lat) * 1000:.0f} ms / {lat[int(len(lat) * 0.99) - 1] * 1000:.0f} ms"
        )
    print(f"  answered by       {out['targets']}")
    print(f"  turnout RSS       start {rss0:.1f} MiB, peak {peak_rss:.1f} MiB, end {rss1:.1f} MiB")
    print(f"  turnout fds       start {fds0}, peak {peak_fds}, end {fds1} (open upstream keep-alive pool included)")
    if settle:
        print(f"  after {settle:g} s idle  RSS {rss2:.1f} MiB, fds {fds2} (pool expired: what is left would be a leak)")
    print(f"  pa/gpt-x state    {table['targets']['pa/gpt-x']['state']} (table v{table['version']})")
    print(f"  serve log         {tmp / 'serve.log'}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench load", description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--clients", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument(
        "--withdraw-at", type=float, default=0.3, help="fraction of the run at which the primary is withdrawn"
    )
    ap.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="also report RSS and fds after this many idle seconds (40: pools expired)",
    )
    args = ap.parse_args(argv or [])
    asyncio.run(_run(args.clients, args.seconds, args.withdraw_at, args.settle))
