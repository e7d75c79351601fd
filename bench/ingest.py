"""Bench: observations per second through HealthModel (breaker + ranker + table), and the time from a
decisive observation to the new table version. Prints numbers and ratios against a bare loop over the same
observations measured in the same run; never asserts (machines differ). Aims: > 50,000 obs/s, < 5 ms.
"""

from __future__ import annotations

import random
import statistics
import time

from controlplane.clock import FakeClock
from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.domain import ErrorClass, Observation, Source
from controlplane.health import HealthModel

__all__ = ["main", "bench_config", "make_observations"]

_PROVIDERS = ("alpha", "beta", "gamma", "delta")
_MODELS = ("large", "small")


def bench_config() -> Config:
    """4 providers × 2 models, 3 routes; thresholds high enough that random noise rarely opens."""
    provs = "\n".join(
        f"  - {{id: {p}, adapter: openai, base_url: 'http://{p}.invalid', region: r{i % 2}, "
        f"models: [{', '.join(f'{{name: {m}, price: {{output: {i + 1}}}}}' for m in _MODELS)}]}}"
        for i, p in enumerate(_PROVIDERS)
    )
    routes = "\n".join(f"  - {{name: {m}, targets: [{', '.join(f'{p}/{m}' for p in _PROVIDERS)}]}}" for m in _MODELS)
    text = f"providers:\n{provs}\nroutes:\n{routes}\n  - {{name: mixed, targets: [alpha/large, beta/small, gamma/large]}}\n"
    return parse_config(text, source="bench")


def make_observations(n: int, clock: FakeClock, seed: int = 7) -> list[Observation]:
    """Live-traffic-like mix: 97% ok with latency, then timeouts, 5xx, rate limits, client errors."""
    rnd = random.Random(seed)
    targets = [f"{p}/{m}" for p in _PROVIDERS for m in _MODELS]
    at = clock.wall()
    out: list[Observation] = []
    for _ in range(n):
        t = rnd.choice(targets)
        r = rnd.random()
        if r < 0.97:
            out.append(
                Observation.success(
                    t,
                    kind="live",
                    at=at,
                    source=Source.LIVE,
                    latency_s=rnd.uniform(0.2, 2.0),
                    ttft_s=rnd.uniform(0.1, 0.8),
                )
            )
        elif r < 0.98:
            out.append(
                Observation.failure(t, ErrorClass.TIMEOUT, kind="live", at=at, source=Source.LIVE, latency_s=30.0)
            )
        elif r < 0.99:
            out.append(
                Observation.failure(t, ErrorClass.SERVER_ERROR, kind="live", at=at, source=Source.LIVE, status=500)
            )
        elif r < 0.995:
            out.append(
                Observation.failure(
                    t, ErrorClass.RATE_LIMITED, kind="live", at=at, source=Source.LIVE, status=429, retry_after_s=1.0
                )
            )
        else:
            out.append(
                Observation.failure(t, ErrorClass.CLIENT_ERROR, kind="live", at=at, source=Source.LIVE, status=400)
            )
    return out


def _bare_loop(obs: list[Observation]) -> float:
    """Baseline: touch each observation the way any consumer must (dict lookup + a field read)."""
    seen: dict[str, float] = {}
    started = time.perf_counter()
    for o in obs:
        seen[o.target] = seen.get(o.target, 0.0) + (o.latency_s or 0.0)
    return time.perf_counter() - started


def ingest_rate(n: int = 200_000, step_s: float = 0.0005) -> tuple[float, float, int]:
    """(obs/s through HealthModel.ingest one by one, obs/s of the bare loop, table versions made)."""
    clock = FakeClock()
    model = HealthModel(bench_config(), clock)
    obs = make_observations(n, clock)
    base = _bare_loop(obs)
    v0 = model.table.version
    started = time.perf_counter()
    for o in obs:
        clock.advance(step_s)  # 2,000 obs per simulated second: the window holds ~15,000 per target
        model.ingest(o)
    took = time.perf_counter() - started
    return n / took, n / base, model.table.version - v0


def decisive_latency(rounds: int = 100) -> list[float]:
    """Seconds from ingesting a region_blocked observation on the primary to holding the new table."""
    out: list[float] = []
    cfg = bench_config()
    for _ in range(rounds):
        clock = FakeClock()
        model = HealthModel(cfg, clock)
        for o in make_observations(2_000, clock, seed=len(out)):
            clock.advance(0.001)
            model.ingest(o)
        clock.advance(0.001)
        primary = model.table.routes["large"].primary
        assert primary is not None
        blocked = Observation.failure(
            primary.target, ErrorClass.REGION_BLOCKED, kind="completion", at=clock.wall(), status=403
        )
        v = model.table.version
        started = time.perf_counter()
        outcome = model.ingest(blocked)
        took = time.perf_counter() - started
        if outcome.table is not None and outcome.table.version > v:
            out.append(took)
    return out


def main() -> None:
    rate, bare, versions = ingest_rate()
    print(f"ingest: {rate:,.0f} observations/s through HealthModel (aim > 50,000)")
    print(
        f"        bare loop over the same observations: {bare:,.0f}/s; HealthModel costs {bare / rate:.1f}× the bare loop"
    )
    print(f"        table versions made: {versions} (score-only drift must not churn versions)")
    lat = sorted(decisive_latency())
    if lat:
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        print(
            f"decisive observation → new table version: p50 {p50:.3f} ms, p99 {p99:.3f} ms over {len(lat)} runs (aim < 5 ms)"
        )
    else:
        print("decisive observation → new table version: no new version was produced (unexpected)")


if __name__ == "__main__":
    main()
