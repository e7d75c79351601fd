"""The data-plane bench: direct-to-upstream vs through Turnout, in one run, on this machine.

Four proxies are measured against the same direct baseline: `turnout serve` as an operator runs it (control
plane, observation pipeline, SQLite store and data plane in one process), a data-plane replica of it
(`turnout serve --role data`), the data plane alone (the real app with
a stand-in control loop and its decision log on SQLite), and a bare aiohttp pass-through (the floor). For each:
throughput at 64 connections (wrk) as a share of direct, CPU ms per proxied request (utime+stime from /proc over
the wrk window plus the moments after it until the process is quiet again, so writes that lag behind the load
are counted), and added latency p50/p99 at one connection. Then resident memory of `turnout serve` while 1,000
streams are open, upstream attempts per target during a withdrawal phase and a hang phase, and a hang→recover
phase through `turnout serve` (and the `--against` commit; bench/dataplane/hang_recover.py): requests held until
a first-byte deadline, how long they waited, the deadline in use, and how soon the primary answers requests again
once it recovers. Every figure is labelled with the git commit it belongs to. The Responses and Messages APIs are
measured beside chat on the data plane alone (bench/dataplane/client_apis.py). Never asserted anywhere: these are
measurements.

Probes: the processes of the throughput, latency, CPU and memory phases run with probes off, so no probe traffic
or probe work is in their figures (and the upstreams' request counts are live traffic only). The hang→recover
phase needs them on, as a user runs Turnout: only a probe brings an open target back early. It runs a fresh
`turnout serve` per commit and round with completion and catalogue probes every second, which the upstream
answers in its mode (bench/dataplane/upstream.py) and counts apart from live requests. The route's primary is
p1 by configuration (`priority: 20` on its model, clear of the ranker's hysteresis margin), as the peers'
ordered fallbacks have one: with equal upstreams the ranking alone would keep the traffic wherever it went
first, and "back on the primary" would mean nothing.

This machine's throughput moves by ±15 % from one 5-second window to the next (a shared VM), so the direct,
bare and Turnout phases run back to back in several interleaved rounds and each figure is the median of the
per-round figures, printed with the rounds' own values. `--against REV` adds `turnout serve` at another commit to the
same rounds and prints the ratios: a change judged against its baseline in one run. `--traced` adds `turnout serve`
with OpenTelemetry traces on at 100 % sampling, exporting over OTLP/HTTP to a local sink, and prints the CPU per
request the traces add. `--keys` adds `turnout serve` with client keys on (every request carries a key with rpm,
tpm and a budget: the gate's whole hot path) and prints its ratios to keys off. Run:
`python -m bench dataplane [SECONDS [ROUNDS]] [--against REV] [--traced] [--keys]`.

Longer than most modules: the bench's phases in order, and bench/listener.py reuses its round and report
helpers (splitting them out waits until that bench settles).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.dataplane import hang_recover
from bench.dataplane.against import worktree

__all__ = ["main"]

_BODY = '{"model":"main","messages":[{"role":"user","content":"hi"}]}'
_LUA = f"""wrk.method = "POST"
wrk.body = '{_BODY}'
wrk.headers["Content-Type"] = "application/json"
"""
_TICKS = os.sysconf("SC_CLK_TCK")
_FIRST_BYTE_S = 3.0  # the bench config's dataplane.first_byte_timeout
_ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "adapters", "controlplane", "bench"],
            cwd=_ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    print("wrk not found; installing the Debian package …", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is required (apt-get install wrk)")
    return path


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15 of stat)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def _wrk(wrk: str, url: str, conns: int, seconds: int, lua: str) -> dict[str, float]:
    out = subprocess.run(
        [wrk, "-t", "1" if conns == 1 else "2", "-c", str(conns), "-d", f"{seconds}s", "--latency", "-s", lua, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(_found(r"Requests/sec:\s+([\d.]+)", out))
    total = int(_found(r"(\d+) requests in", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {p: _ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    return {
        "rps": rps,
        "requests": total,
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "p50_ms": lat.get("50", float("nan")),
        "p99_ms": lat.get("99", float("nan")),
    }


def _found(pattern: str, text: str) -> str:
    """The first group of `pattern` in wrk's report; a report without it is a wrk failure, said as such."""
    m = re.search(pattern, text)
    if m is None:
        raise RuntimeError(f"wrk output has no {pattern!r}: {text[:300]!r}")
    return m.group(1)


def _start(args: list[str], quiet: bool = False) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        stderr=subprocess.DEVNULL if quiet else None,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready" not in line:
        proc.kill()
        raise SystemExit(f"{args[0]} did not start: {line!r}")
    return proc


async def _streams(url: str, n: int, pid: int) -> list[float]:
    """Open n concurrent streams through Turnout; sample its RSS while they run."""
    samples = [_rss_mb(pid)]
    body = {"model": "stream", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    conn = aiohttp.TCPConnector(limit=0)
    errors = 0
    first_error = ""
    async with aiohttp.ClientSession(connector=conn) as s:

        async def one() -> None:
            nonlocal errors, first_error
            try:
                async with s.post(url, json=body) as r:
                    data = await r.read()
                    if r.status != 200 or not data.endswith(b"data: [DONE]\n\n"):
                        errors += 1
                        first_error = first_error or f"{r.status} {data[-200:]!r}"
            except aiohttp.ClientError as exc:
                errors += 1
                first_error = first_error or repr(exc)

        for _ in range(3):  # three waves: memory should come back to the same level
            tasks = []
            for _ in range(10):  # ramp up over ~1 s so connection setup does not hit the first-byte timeout
                tasks += [asyncio.create_task(one()) for _ in range(n // 10)]
                await asyncio.sleep(0.1)
            while not all(t.done() for t in tasks):
                await asyncio.sleep(0.5)
                samples.append(_rss_mb(pid))
            await asyncio.gather(*tasks)
            samples.append(_rss_mb(pid))
    if errors:
        print(f"  stream errors: {errors} (first: {first_error})")
    return samples


async def _load(url: str, clients: int, seconds: float) -> tuple[int, int]:
    """Steady load from `clients` concurrent clients for `seconds`; returns (ok, client-visible errors)."""
    ok = err = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def client() -> None:
            nonlocal ok, err
            while time.monotonic() < deadline:
                async with s.post(url, data=_BODY, headers={"content-type": "application/json"}) as r:
                    await r.read()
                    if r.status == 200:
                        ok += 1
                    else:
                        err += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return ok, err


async def _get_json(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return await r.json()


async def _phase(name: str, turnout: str, admin: list[str], mode: str, seconds: float) -> None:
    async with aiohttp.ClientSession() as s:
        await (await s.post(f"{turnout}/_bench/reset")).read()
        for a in admin:
            await (await s.post(f"{a}/_admin/mode", json={"mode": "ok"})).read()
        before = [(await (await s.get(f"{a}/_admin/stats")).json())["count"] for a in admin]
        await (await s.post(f"{admin[0]}/_admin/mode", json={"mode": mode})).read()
        ok, err = await _load(f"{turnout}/v1/chat/completions", 20, seconds)
        after = [(await (await s.get(f"{a}/_admin/stats")).json())["count"] for a in admin]
        st = await (await s.get(f"{turnout}/_bench/state")).json()
        await (await s.post(f"{admin[0]}/_admin/mode", json={"mode": "ok"})).read()
    counts = [b - a for a, b in zip(before, after, strict=True)]
    print(
        f"  {name:<11} {seconds:.0f}s, 20 clients: ok={ok} client-visible errors={err}; upstream attempts "
        f"primary={counts[0]} secondary={counts[1]}; primary state={st['states'].get('p1/m')}"
    )


def _cpu_settled(pid: int, since: float) -> float:
    """CPU seconds used since `since`, once the process has gone quiet: work deferred past the load window
    (decision-log and observation writes catching up) belongs to the requests that caused it."""
    prev = _cpu_s(pid)
    for _ in range(50):
        time.sleep(0.2)
        cur = _cpu_s(pid)
        if cur - prev <= 0.01:
            break
        prev = cur
    return prev - since


def _round(
    wrk: str,
    lua: str,
    seconds: int,
    direct: str,
    proxies: list[tuple[str, str, int]],
    luas: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One round: direct and each proxy back to back at 64 connections, then at one; CPU per request from /proc.
    `luas`: a wrk script of its own for some proxies (the keyed one sends its client key)."""
    luas = luas or {}
    out: dict[str, Any] = {"direct64": _wrk(wrk, direct, 64, seconds, lua)}
    for name, url, pid in proxies:
        cpu0 = _cpu_s(pid)
        r = out[f"{name}64"] = _wrk(wrk, url, 64, seconds, luas.get(name, lua))
        out[f"{name}_cpu_ms"] = _cpu_settled(pid, cpu0) * 1000 / max(r["requests"], 1)
    out["direct1"] = _wrk(wrk, direct, 1, seconds, lua)
    for name, url, _ in proxies:
        out[f"{name}1"] = _wrk(wrk, url, 1, seconds, luas.get(name, lua))
    return out


def _report(rounds: list[dict[str, Any]], names: list[str]) -> None:
    def fig(f: Any, fmt: str) -> str:
        vals = [f(r) for r in rounds]
        return f"{statistics.median(vals):{fmt}} [{' '.join(f'{v:{fmt}}' for v in vals)}]"

    for name in names:
        print(f"  {name}:")
        print(
            f"    throughput vs direct  {fig(lambda r, name=name: r[f'{name}64']['rps'] / r['direct64']['rps'] * 100, '.1f')} % "
            f"(target ≥ 25)   req/s {fig(lambda r, name=name: r[f'{name}64']['rps'], '.0f')}, "
            f"non-2xx {sum(r[f'{name}64']['errors'] for r in rounds):.0f}"
        )
        print(f"    CPU ms/request        {fig(lambda r, name=name: r[f'{name}_cpu_ms'], '.3f')} (target ≤ 0.3)")
        for p, target in (("p50", "0.7"), ("p99", "2")):
            print(
                f"    added {p} ms, 1 conn  {fig(lambda r, name=name, p=p: r[f'{name}1'][f'{p}_ms'] - r['direct1'][f'{p}_ms'], '.3f')} "
                f"(target < {target})"
            )
    print(
        f"  direct: req/s @64 {fig(lambda r: r['direct64']['rps'], '.0f')}; p50 / p99 ms @1 "
        f"{fig(lambda r: r['direct1']['p50_ms'], '.3f')} / {fig(lambda r: r['direct1']['p99_ms'], '.3f')}"
    )


def _compare(rounds: list[dict[str, Any]], name: str, base: str, commit: str, sha: str, title: str = "") -> None:
    """`turnout serve` here against the same process at another commit (or with keys on against off): per-round
    ratios, then their medians."""

    def ratio(f: Any) -> str:
        vals = [f(r) for r in rounds]
        return f"×{statistics.median(vals):.2f} [{' '.join(f'{v:.2f}' for v in vals)}]"

    title = title or f"turnout serve @ {commit} against @ {sha}"
    print(f"  {title}, per round (below 1: less; throughput above 1 is better):")
    print(f"    throughput            {ratio(lambda r: r[f'{name}64']['rps'] / r[f'{base}64']['rps'])}")
    print(f"    CPU ms/request        {ratio(lambda r: r[f'{name}_cpu_ms'] / r[f'{base}_cpu_ms'])}")
    for p in ("p50", "p99"):
        print(f"    {p} ms, 1 conn        {ratio(lambda r, p=p: r[f'{name}1'][f'{p}_ms'] / r[f'{base}1'][f'{p}_ms'])}")


TRACED = "turnout serve, traces on (100 % sampled, OTLP/HTTP to a local sink)"


def _traced(rounds: list[dict[str, Any]], plain: str) -> None:
    """What traces cost: the traced process against the same process untraced, in the same rounds."""

    def fig(f: Any, fmt: str) -> str:
        vals = [f(r) for r in rounds]
        return f"{statistics.median(vals):{fmt}} [{' '.join(f'{v:{fmt}}' for v in vals)}]"

    print("  traces on against off (turnout serve, per round):")
    print(f"    added CPU ms/request  {fig(lambda r: r[f'{TRACED}_cpu_ms'] - r[f'{plain}_cpu_ms'], '+.3f')}")
    print(f"    CPU ratio             ×{fig(lambda r: r[f'{TRACED}_cpu_ms'] / r[f'{plain}_cpu_ms'], '.2f')}")
    print(f"    throughput ratio      ×{fig(lambda r: r[f'{TRACED}64']['rps'] / r[f'{plain}64']['rps'], '.2f')}")


def _start_serve(
    cfg: Path,
    data_url: str,
    *extra: str,
    tree: Path = _ROOT,
    env: dict[str, str] | None = None,
    key: str | None = None,
) -> subprocess.Popen[str]:
    """`turnout serve` as an operator runs it, from the source `tree`; ready once its data plane lists the routes
    (to `key`, when client keys are on)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "controlplane.cli", "serve", "-c", str(cfg), *extra],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )

    async def ready() -> bool:
        async with aiohttp.ClientSession() as s:
            for _ in range(150):
                try:
                    headers = {"Authorization": f"Bearer {key}"} if key else {}
                    async with s.get(f"{data_url}/v1/models", headers=headers) as r:
                        if r.status == 200:
                            return True
                except aiohttp.ClientError:
                    pass
                if proc.poll() is not None:
                    return False
                await asyncio.sleep(0.1)
        return False

    if not asyncio.run(ready()):
        proc.kill()
        raise SystemExit("turnout serve did not start")
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    """Terminate and wait (kill after 5 s); a process already gone is fine."""
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench dataplane", description=__doc__.split("\n\n")[0])
    p.add_argument("seconds", nargs="?", type=int, default=4, help="length of each wrk phase (default 4)")
    p.add_argument("rounds", nargs="?", type=int, default=3, help="interleaved rounds; figures are medians (default 3)")
    p.add_argument("--against", metavar="REV", help="also measure `turnout serve` at this commit, in the same rounds")
    p.add_argument("--keys", action="store_true", help="also measure `turnout serve` with client keys on")
    p.add_argument("--traced", action="store_true", help="also measure `turnout serve` with traces on (100 %% sampled)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    opts = _args(sys.argv[1:] if argv is None else argv)
    seconds, n_rounds = opts.seconds, opts.rounds
    wrk = _ensure_wrk()
    commit = _commit()
    up_ports = [_free_port() for _ in range(3)]
    t_port, b_port, s_data, s_control, r_data = _free_port(), _free_port(), _free_port(), _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        baseline = stack.enter_context(worktree(_ROOT, opts.against)) if opts.against else None
        cfg = Path(tmp) / "bench.yaml"
        targets = f"""
providers:
  - {{id: p1, adapter: openai, base_url: "http://127.0.0.1:{up_ports[0]}/v1", models: [{{name: m, price: {{input: 1, output: 2}}, priority: 20}}]}}
  - {{id: p2, adapter: openai, base_url: "http://127.0.0.1:{up_ports[1]}/v1", models: [{{name: m}}]}}
  - {{id: slow, adapter: openai, base_url: "http://127.0.0.1:{up_ports[2]}/v1", models: [{{name: m}}]}}
routes:
  - {{name: main, targets: [p1/m, p2/m]}}
  - {{name: stream, targets: [slow/m]}}
dataplane: {{first_byte_timeout: {_FIRST_BYTE_S:g}s, total_timeout: 10s}}
"""
        cfg.write_text(targets)
        # The full product: control plane, pipeline, SQLite store and data plane in one process. Probes are off
        # (the figures are about proxied requests), except in the hang→recover phase (the module docstring).
        serve_cfg = Path(tmp) / "serve.yaml"
        token = f"bench-admin-{os.getpid()}-0123456789abcdef"
        auth = f'auth: {{tokens: [{{token: "{token}", scope: admin}}]}}\n'
        off = "{enabled: false}"
        no_probes = f"probes: {{kinds: {{catalogue: {off}, completion: {off}, status_page: {off}}}}}\n"

        def serve_yaml(data: int, control: int, db: str | None, probes: str = no_probes) -> str:
            """`turnout serve` on these ports; with a SQLite file of its own, or none (a data replica)."""
            store = f'database: {{url: "sqlite:///{tmp}/{db}"}}\n' if db else ""
            return (
                targets
                + auth
                + probes
                + f"server: {{data: {{host: 127.0.0.1, port: {data}}}, control: {{host: 127.0.0.1, port: {control}}}}}\n"
                + store
            )

        serve_cfg.write_text(serve_yaml(s_data, s_control, "turnout.db"))
        # A data-plane replica of that control plane, as a scaled deployment runs its data processes: no store;
        # outcomes and decision records go to the control plane in batches (its admin token from the config).
        replica_cfg = Path(tmp) / "replica.yaml"
        replica_cfg.write_text(serve_yaml(r_data, _free_port(), None))
        lua = Path(tmp) / "post.lua"
        lua.write_text(_LUA)
        # The upstreams are quiet: clients that leave mid-stream make aiohttp log tracebacks there.
        procs = [
            _start(["bench.dataplane.upstream", str(up_ports[0]), str(up_ports[1])], quiet=True),
            _start(["bench.dataplane.upstream", "--chunk-delay=0.2", "--chunks=25", str(up_ports[2])], quiet=True),
            _start(["bench.dataplane.turnout_proc", str(cfg), str(t_port)]),
            _start(
                ["bench.dataplane.bare", f"http://127.0.0.1:{up_ports[0]}/v1/chat/completions", str(b_port)], quiet=True
            ),
        ]
        serve_url = f"http://127.0.0.1:{s_data}"
        procs.append(_start_serve(serve_cfg, serve_url))
        replica_url = f"http://127.0.0.1:{r_data}"
        procs.append(
            _start_serve(replica_cfg, replica_url, "--role", "data", "--control-url", f"http://127.0.0.1:{s_control}")
        )
        pid, bare_pid, serve_pid, replica_pid = procs[2].pid, procs[3].pid, procs[4].pid, procs[5].pid
        against: list[tuple[str, str, int]] = []
        sha = ""
        if baseline is not None:  # the same process at the commit compared against, its own ports and store
            tree, sha = baseline
            a_data = _free_port()
            a_cfg = Path(tmp) / "against.yaml"
            a_cfg.write_text(serve_yaml(a_data, _free_port(), "against.db"))
            procs.append(_start_serve(a_cfg, f"http://127.0.0.1:{a_data}", tree=tree))
            against = [
                (
                    f"turnout serve @ {sha} (the same process at the commit compared against)",
                    f"http://127.0.0.1:{a_data}/v1/chat/completions",
                    procs[-1].pid,
                )
            ]
        if opts.traced:  # the same process with traces on, every request sampled, exported to a local sink
            sink_port, x_data = _free_port(), _free_port()
            procs.append(_start(["bench.dataplane.otlp_sink", str(sink_port)], quiet=True))
            x_cfg = Path(tmp) / "traced.yaml"
            x_cfg.write_text(serve_yaml(x_data, _free_port(), "traced.db"))
            env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
            env |= {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
                "OTEL_TRACES_SAMPLER": "always_on",
                "OTEL_BSP_MAX_QUEUE_SIZE": "262144",  # no span dropped under load: every one is paid for
            }
            procs.append(_start_serve(x_cfg, f"http://127.0.0.1:{x_data}", env=env))
            against.append((TRACED, f"http://127.0.0.1:{x_data}/v1/chat/completions", procs[-1].pid))
        luas: dict[str, str] = {}
        keyed: list[tuple[str, str, int]] = []
        if opts.keys:  # the same process with a client key on every request (limits and budget never reached)
            k_data = _free_port()
            k_cfg = Path(tmp) / "keyed.yaml"
            k_cfg.write_text(serve_yaml(k_data, _free_port(), "keyed.db"))
            made = subprocess.run(
                [sys.executable, "-m", "controlplane.cli", "keys", "-c", str(k_cfg), "--json", "create",
                 "--name", "bench", "--rpm", "10000000", "--tpm", "10000000000", "--budget-usd", "1000000000"],
                cwd=_ROOT, capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            key = re.search(r'"key": "(tk_[^"]+)"', made).group(1)  # type: ignore[union-attr]
            procs.append(_start_serve(k_cfg, f"http://127.0.0.1:{k_data}", key=key))
            keyed_name = "turnout serve, client keys on (rpm, tpm and budget checked on every request)"
            keyed = [(keyed_name, f"http://127.0.0.1:{k_data}/v1/chat/completions", procs[-1].pid)]
            k_lua = Path(tmp) / "keyed.lua"
            k_lua.write_text(_LUA + f'wrk.headers["Authorization"] = "Bearer {key}"\n')
            luas[keyed_name] = str(k_lua)
        try:
            direct_url = f"http://127.0.0.1:{up_ports[0]}/v1/chat/completions"
            turnout_url = f"http://127.0.0.1:{t_port}/v1/chat/completions"
            _wrk(wrk, turnout_url, 8, 1, str(lua))  # warm-up: pools, caches
            print(f"Turnout data-plane bench @ {commit} ({os.cpu_count()} CPUs, wrk + upstream on the same machine)")
            bare_url = f"http://127.0.0.1:{b_port}/v1/chat/completions"
            _wrk(wrk, bare_url, 8, 1, str(lua))
            _wrk(wrk, f"{serve_url}/v1/chat/completions", 8, 1, str(lua))
            _wrk(wrk, f"{replica_url}/v1/chat/completions", 8, 1, str(lua))
            for _, url, _ in against:
                _wrk(wrk, url, 8, 1, str(lua))
            for name, url, _ in keyed:
                _wrk(wrk, url, 8, 1, luas[name])
            proxies = [
                (
                    "turnout serve (control plane, pipeline, SQLite store, data plane: one process)",
                    f"{serve_url}/v1/chat/completions",
                    serve_pid,
                ),
                (
                    "turnout serve --role data (a data-plane replica of the process above)",
                    f"{replica_url}/v1/chat/completions",
                    replica_pid,
                ),
                ("data plane alone (stand-in control loop; decision log on SQLite)", turnout_url, pid),
                ("bare aiohttp pass-through (no routing, no accounting)", bare_url, bare_pid),
                *against,
                *keyed,
            ]
            rounds = [_round(wrk, str(lua), seconds, direct_url, proxies, luas) for _ in range(n_rounds)]
            load = Path("/proc/loadavg").read_text().split()[0]
            log = asyncio.run(_get_json(f"http://127.0.0.1:{t_port}/_bench/state"))["decisions"]
            print(
                f"  data plane alone: decision log (SQLite) {log['written']} records written, {log['dropped']} dropped"
            )
            usage = asyncio.run(
                _get_json(
                    f"http://127.0.0.1:{s_control}/api/v1/usage?by=route&window=1h",
                    token,
                )
            )
            print(
                f"  turnout serve's usage API (its own requests and the replica's): "
                f"{sum(r['requests'] for r in usage.get('rows', []))} requests recorded"
            )
            print(f"  load average at the end of the wrk phases: {load} (other processes share these CPUs)")
            print(
                f"  {n_rounds} interleaved rounds of {seconds} s per phase; each figure is the median over the rounds "
                f"(per-round values in brackets)"
            )
            _report(rounds, [name for name, _, _ in proxies])
            if baseline is not None:
                _compare(rounds, proxies[0][0], against[0][0], commit, sha)
            if opts.traced:
                _traced(rounds, proxies[0][0])
            if keyed:
                _compare(rounds, keyed[0][0], proxies[0][0], commit, sha, "turnout serve, client keys on against off")
            from bench.dataplane import client_apis  # late: it reuses this module's helpers

            client_apis.report(
                client_apis.measure(wrk, f"http://127.0.0.1:{t_port}", pid, seconds, n_rounds, Path(tmp))
            )
            rss = asyncio.run(_streams(f"{serve_url}/v1/chat/completions", 1000, serve_pid))
            print(f"  1000 concurrent 5 s streams, 3 waves: turnout serve RSS MB {' '.join(f'{x:.0f}' for x in rss)}")
            print(
                "  failover cost, data plane alone (its stand-in control loop withdraws or opens a target at once, so "
                "every upstream attempt after that would be live traffic to a target that should get none):"
            )
            admin = [f"http://127.0.0.1:{p}" for p in up_ports[:2]]
            t_base = f"http://127.0.0.1:{t_port}"
            asyncio.run(_phase("withdrawal", t_base, admin, "region_blocked", seconds))
            asyncio.run(_phase("hang", t_base, admin, "hang", max(seconds, 6)))  # > the 3 s first-byte timeout
            # The full product with probes on: learned first-byte deadlines (dataplane/deadlines.py) and its own
            # breaker's return. Before and after on the same upstreams, interleaved round by round; a fresh process
            # each time, so every run starts closed at the first open level with an empty window.
            hang_s, after_s = max(seconds, 6), 10.0
            revs = [(f"turnout serve @ {commit}", _ROOT)]
            if baseline is not None:
                revs.append((f"turnout serve @ {sha}", baseline[0]))
            runs: dict[str, list[hang_recover.HangRun]] = {label: [] for label, _ in revs}
            targets_admin = {"p1/m": admin[0], "p2/m": admin[1]}
            for i in range(n_rounds):
                for j, (label, tree) in enumerate(revs):
                    h_data, h_control = _free_port(), _free_port()
                    h_cfg = Path(tmp) / f"hang-{i}-{j}.yaml"
                    h_cfg.write_text(serve_yaml(h_data, h_control, f"hang-{i}-{j}.db", hang_recover.probes_yaml()))
                    h_proc = _start_serve(h_cfg, f"http://127.0.0.1:{h_data}", tree=tree)
                    procs.append(h_proc)
                    run = hang_recover.hang_phase(
                        f"http://127.0.0.1:{h_data}",
                        f"http://127.0.0.1:{h_control}",
                        token,
                        targets_admin,
                        hang_s,
                        after_s,
                    )
                    runs[label].append(asyncio.run(run))
                    _stop(h_proc)
            hang_recover.report(runs, hang_s, after_s, _FIRST_BYTE_S)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                _stop(p)
