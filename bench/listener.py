"""Turnout's own HTTP/1.1 listener against uvicorn's httptools protocol, in front of the same data-plane app.

The listener (dataplane/http/listener.py) is hand-written, so it stays only while it shows a clear margin over
the maintained alternative. Both servers run the data plane alone (the real app, its SQLite decision log, the
bench's stand-in control loop: bench/dataplane/turnout_proc.py) against the same upstream, in interleaved
rounds (this VM's throughput moves ±15 % between windows); each figure is the median of the per-round figures,
and the per-round ratios uvicorn / listener are printed. Never asserted: a measurement.
Run: `python -m bench listener [SECONDS [ROUNDS]]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.dataplane.run import _LUA, _commit, _ensure_wrk, _free_port, _report, _round, _start, _wrk

__all__ = ["main"]

_LISTENER = "data plane alone on Turnout's listener"
_UVICORN = "data plane alone on uvicorn (httptools protocol, ASGI)"


def _ratios(rounds: list[dict[str, Any]]) -> None:
    def ratio(f: Any) -> str:
        vals = [f(r) for r in rounds]
        return f"×{statistics.median(vals):.2f} [{' '.join(f'{v:.2f}' for v in vals)}]"

    a, b = _UVICORN, _LISTENER
    print("  uvicorn / listener, per round (throughput below 1: uvicorn serves less; CPU above 1: uvicorn costs more):")
    print(f"    throughput            {ratio(lambda r: r[f'{a}64']['rps'] / r[f'{b}64']['rps'])}")
    print(f"    CPU ms/request        {ratio(lambda r: r[f'{a}_cpu_ms'] / r[f'{b}_cpu_ms'])}")
    for p in ("p50", "p99"):
        print(f"    {p} ms, 1 conn        {ratio(lambda r, p=p: r[f'{a}1'][f'{p}_ms'] / r[f'{b}1'][f'{p}_ms'])}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench listener", description=__doc__.split("\n\n")[0])
    p.add_argument("seconds", nargs="?", type=int, default=4, help="length of each wrk phase (default 4)")
    p.add_argument("rounds", nargs="?", type=int, default=3, help="interleaved rounds (default 3)")
    opts = p.parse_args(sys.argv[1:] if argv is None else argv)
    with contextlib.suppress(ImportError):
        import uvicorn  # noqa: F401
    if "uvicorn" not in sys.modules:
        raise SystemExit("bench listener needs uvicorn: pip install '.[bench]'")
    wrk = _ensure_wrk()
    up, lp, upp = _free_port(), _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.yaml"
        cfg.write_text(
            f"""
providers:
  - {{id: p1, adapter: openai, base_url: "http://127.0.0.1:{up}/v1", models: [{{name: m, price: {{input: 1, output: 2}}}}]}}
routes:
  - {{name: main, targets: [p1/m]}}
"""
        )
        lua = Path(tmp) / "post.lua"
        lua.write_text(_LUA)
        procs = [
            _start(["bench.dataplane.upstream", str(up), str(_free_port())], quiet=True),
            _start(["bench.dataplane.turnout_proc", str(cfg), str(lp)]),
            _start(["bench.dataplane.turnout_proc", str(cfg), str(upp), "--uvicorn"]),
        ]
        try:
            direct = f"http://127.0.0.1:{up}/v1/chat/completions"
            proxies = [
                (_LISTENER, f"http://127.0.0.1:{lp}/v1/chat/completions", procs[1].pid),
                (_UVICORN, f"http://127.0.0.1:{upp}/v1/chat/completions", procs[2].pid),
            ]
            for _, url, _ in proxies:
                _wrk(wrk, url, 8, 1, str(lua))  # warm-up
            print(f"Listener bench @ {_commit()} ({os.cpu_count()} CPUs, wrk + upstream on the same machine)")
            rounds = [_round(wrk, str(lua), opts.seconds, direct, proxies) for _ in range(opts.rounds)]
            _report(rounds, [n for n, _, _ in proxies])
            _ratios(rounds)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(10)


if __name__ == "__main__":
    main()
