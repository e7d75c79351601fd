"""Client keys, A/B: `turnout serve` with keys off against the same process with a key on every request (rpm, tpm and
a budget, none of them reached), CPU ms per proxied request from /proc.

The two run in alternating order (A B B A, then B A A B, …) so neither always runs at the busier moment of a round
on this shared VM; the figure is the median of the per-pair ratios. `bench dataplane --keys` measures the same pair
inside its larger rounds. Run: `python -m bench client_keys [ROUNDS]` (default 4; 3 s of wrk at 64 connections per
phase). The target (docs/dataplane.md, Performance): keys on within +10 % of keys off.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.dataplane.run import _LUA, _ROOT, _cpu_s, _cpu_settled, _ensure_wrk, _free_port, _start, _start_serve, _wrk

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    rounds = int(args[0]) if args else 4
    wrk = _ensure_wrk()
    up = [_free_port(), _free_port()]
    with tempfile.TemporaryDirectory() as tmp:
        common = f"""
providers:
  - {{id: p1, adapter: openai, base_url: "http://127.0.0.1:{up[0]}/v1", models: [{{name: m, price: {{input: 1, output: 2}}}}]}}
  - {{id: p2, adapter: openai, base_url: "http://127.0.0.1:{up[1]}/v1", models: [{{name: m}}]}}
routes:
  - {{name: main, targets: [p1/m, p2/m]}}
auth: {{tokens: [{{token: "bench-admin-{os.getpid()}-0123456789abcdef", scope: admin}}]}}
probes: {{kinds: {{catalogue: {{enabled: false}}, completion: {{enabled: false}}, status_page: {{enabled: false}}}}}}
"""

        def config(name: str, port: int) -> Path:
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(
                common
                + f"server: {{data: {{host: 127.0.0.1, port: {port}}}, control: {{host: 127.0.0.1, port: {_free_port()}}}}}\n"
                + f'database: {{url: "sqlite:///{tmp}/{name}.db"}}\n'
            )
            return path

        off_port, on_port = _free_port(), _free_port()
        off_cfg, on_cfg = config("off", off_port), config("on", on_port)
        made = subprocess.run(
            [sys.executable, "-m", "controlplane.cli", "keys", "-c", str(on_cfg), "--json", "create", "--name", "bench",
             "--rpm", "10000000", "--tpm", "10000000000", "--budget-usd", "1000000000"],
            cwd=_ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        key = re.search(r'"key": "(tk_[^"]+)"', made).group(1)  # type: ignore[union-attr]
        procs = [_start(["bench.dataplane.upstream", str(up[0]), str(up[1])], quiet=True)]
        procs.append(_start_serve(off_cfg, f"http://127.0.0.1:{off_port}"))
        procs.append(_start_serve(on_cfg, f"http://127.0.0.1:{on_port}", key=key))
        off_lua, on_lua = Path(tmp) / "off.lua", Path(tmp) / "on.lua"
        off_lua.write_text(_LUA)
        on_lua.write_text(_LUA + f'wrk.headers["Authorization"] = "Bearer {key}"\n')
        phases = {
            "off": (f"http://127.0.0.1:{off_port}/v1/chat/completions", procs[1].pid, str(off_lua)),
            "on": (f"http://127.0.0.1:{on_port}/v1/chat/completions", procs[2].pid, str(on_lua)),
        }
        try:
            for url, _, lua in phases.values():
                _wrk(wrk, url, 8, 1, lua)  # warm-up
            cpu: dict[str, list[float]] = {"off": [], "on": []}
            for i in range(rounds):
                for name in ("off", "on", "on", "off") if i % 2 == 0 else ("on", "off", "off", "on"):
                    url, pid, lua = phases[name]
                    before = _cpu_s(pid)
                    r = _wrk(wrk, url, 64, 3, lua)
                    cpu[name].append(_cpu_settled(pid, before) * 1000 / max(r["requests"], 1))
            ratios = [on / off for off, on in zip(cpu["off"], cpu["on"], strict=True)]
            load = Path("/proc/loadavg").read_text().split()[0]
            print(f"  turnout serve, client keys off / on, {rounds} ABBA rounds, load average {load}:")
            for name in ("off", "on"):
                vals = " ".join(f"{v:.3f}" for v in cpu[name])
                print(f"    CPU ms/request keys {name:<3} {statistics.median(cpu[name]):.3f} [{vals}]")
            print(
                f"    on / off, per pair      ×{statistics.median(ratios):.2f} [{' '.join(f'{v:.2f}' for v in ratios)}]"
                " (target ≤ 1.10)"
            )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=10)


if __name__ == "__main__":
    main()
