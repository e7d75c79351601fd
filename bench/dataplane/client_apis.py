"""The client APIs beside chat: CPU per request of `POST /v1/responses` and `POST /v1/messages`, translated to an
OpenAI-compatible upstream's chat completions, against `POST /v1/chat/completions` on the same data-plane process,
in the same interleaved rounds. Printed, never asserted (target: a translated request within 1.5× of chat).

Run alone: `python -m bench.dataplane.client_apis [SECONDS [ROUNDS]]`; `python -m bench dataplane` runs it too.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from bench.dataplane.run import _commit, _cpu_s, _cpu_settled, _ensure_wrk, _free_port, _start, _wrk

__all__ = ["measure", "main"]

_BODIES = {
    "chat": '{"model":"main","messages":[{"role":"user","content":"hi"}]}',
    "responses": '{"model":"main","input":"hi","instructions":"be brief"}',
    "messages": '{"model":"main","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}',
}
_PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses", "messages": "/v1/messages"}


def _lua(tmp: Path, api: str) -> str:
    path = tmp / f"{api}.lua"
    path.write_text(
        f"""wrk.method = "POST"
wrk.body = '{_BODIES[api]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
"""
    )
    return str(path)


def measure(wrk: str, base: str, pid: int, seconds: int, rounds: int, tmp: Path) -> dict[str, list[dict[str, float]]]:
    """Per API and round: requests/s at 64 connections, CPU ms per request, p50/p99 at one connection."""
    luas = {api: _lua(tmp, api) for api in _BODIES}
    for api in _BODIES:
        _wrk(wrk, base + _PATHS[api], 8, 1, luas[api])  # warm-up
    out: dict[str, list[dict[str, float]]] = {api: [] for api in _BODIES}
    for _ in range(rounds):
        for api in _BODIES:
            cpu0 = _cpu_s(pid)
            r = _wrk(wrk, base + _PATHS[api], 64, seconds, luas[api])
            cpu_ms = _cpu_settled(pid, cpu0) * 1000 / max(r["requests"], 1)
            one = _wrk(wrk, base + _PATHS[api], 1, seconds, luas[api])
            out[api].append(
                {"rps": r["rps"], "errors": r["errors"], "cpu_ms": cpu_ms, "p50": one["p50_ms"], "p99": one["p99_ms"]}
            )
    return out


def report(got: dict[str, list[dict[str, float]]]) -> None:
    def fig(vals: list[float], fmt: str) -> str:
        return f"{statistics.median(vals):{fmt}} [{' '.join(f'{v:{fmt}}' for v in vals)}]"

    chat = got["chat"]
    print("  client APIs on the data plane alone, translated to an OpenAI-compatible upstream's chat completions:")
    for api, rows in got.items():
        line = (
            f"    {api:<9} CPU ms/request {fig([r['cpu_ms'] for r in rows], '.3f')}  req/s @64 "
            f"{fig([r['rps'] for r in rows], '.0f')}  p50/p99 ms @1 {statistics.median(r['p50'] for r in rows):.3f}/"
            f"{statistics.median(r['p99'] for r in rows):.3f}  non-2xx {sum(r['errors'] for r in rows):.0f}"
        )
        if api != "chat":
            ratios = [r["cpu_ms"] / c["cpu_ms"] for r, c in zip(rows, chat, strict=True)]
            line += f"  CPU ×{fig(ratios, '.2f')} of chat (target ≤ 1.5)"
        print(line)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    seconds = int(args[0]) if args else 4
    rounds = int(args[1]) if len(args) > 1 else 3
    wrk = _ensure_wrk()
    up, port = _free_port(), _free_port()
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
        procs = [
            _start(["bench.dataplane.upstream", str(up)], quiet=True),
            _start(["bench.dataplane.turnout_proc", str(cfg), str(port)]),
        ]
        try:
            print(f"Turnout client-API bench @ {_commit()} ({rounds} rounds of {seconds} s per phase)")
            report(measure(wrk, f"http://127.0.0.1:{port}", procs[1].pid, seconds, rounds, Path(tmp)))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=5)


if __name__ == "__main__":
    main()
