"""Probe scheduler: pure planning, the job body (deadline, bugs, health gating, metrics), and firing."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import TypedDict, Unpack

import pytest

from controlplane.domain import Classification, ErrorClass, Observation, TargetRef
from controlplane.metrics import Metrics
from controlplane.scheduler import ProbeScheduler, ShouldProbe, first_delay, next_delay, plan_jobs
from probes import ProbeContext, ProbeFn
from probes.deadline import MAX_IN_FLIGHT, ProbeDeadlines
from tests.fakes import FakeClock
from tests.probes.scripted import ScriptedAdapter, make_config


class Sink:
    def __init__(self) -> None:
        self.observations: list[Observation] = []
        self.arrived = asyncio.Event()
        self.wanted = 0

    def submit(self, obs: Observation) -> None:
        self.observations.append(obs)
        if self.wanted and len(self.observations) >= self.wanted:
            self.arrived.set()


class _Options(TypedDict, total=False):
    """The scheduler's optional parts a test may set."""

    metrics: Metrics
    health: ShouldProbe
    kinds: Mapping[str, ProbeFn]
    on_start: Callable[[str, float], None]
    deadlines: ProbeDeadlines


def _sched(cfg_kinds: str = "", clock: FakeClock | None = None, **kw: Unpack[_Options]) -> tuple[ProbeScheduler, Sink]:
    cfg = make_config(probes=cfg_kinds) if cfg_kinds else make_config()
    sink = Sink()
    s = ProbeScheduler(
        cfg, clock or FakeClock(), session=None, sink=sink, adapter_for=lambda p: ScriptedAdapter(), **kw
    )
    return s, sink


def test_plan_has_one_catalogue_job_per_provider_and_one_completion_job_per_target() -> None:
    cfg = make_config(
        extra="",
        probes="probes: {kinds: {catalogue: {interval: 60s}, completion: {interval: 5m}, status_page: {}, count_tokens: {}, health: {enabled: false}}}",
    )
    keys = sorted(j.key for j in plan_jobs(cfg))
    # status_page needs a status page URL, count_tokens an anthropic/gemini adapter: neither applies here
    assert keys == [
        "catalogue:p0",
        "catalogue:p1",
        "completion:p0/m0",
        "completion:p0/m1",
        "completion:p1/m0",
        "completion:p1/m1",
    ]
    cat = next(j for j in plan_jobs(cfg) if j.key == "catalogue:p0")
    assert cat.targets == (TargetRef("p0", "m0"), TargetRef("p0", "m1")) and cat.interval == 60.0


def test_next_delay_stays_within_jitter_and_is_reproducible() -> None:
    delays = [next_delay("completion:a/b", float(t), 30.0, 0.2) for t in range(500)]
    assert all(24.0 <= d <= 36.0 for d in delays)
    assert max(delays) - min(delays) > 10.0  # actually jittered
    assert abs(sum(delays) / len(delays) - 30.0) < 1.0  # mean interval preserved
    assert next_delay("k", 12.5, 30.0, 0.2) == next_delay("k", 12.5, 30.0, 0.2)
    assert next_delay("k", 1.0, 10.0, 0.0) == 10.0


def test_first_runs_are_spread_over_the_start_window() -> None:
    firsts = [first_delay(f"completion:p/m{i}", 10.0) for i in range(200)]
    assert all(0 <= f < 10 for f in firsts) and max(firsts) > 9 and min(firsts) < 1
    assert max(first_delay(f"completion:p/m{i}", 3600.0) for i in range(200)) < 30.0  # capped spread


async def test_targets_and_kinds_probed_at_their_intervals_with_jitter_bounded_and_hung_probe_cut() -> None:
    clock = FakeClock()
    calls: dict[str, list[float]] = defaultdict(list)
    active = peak = 0

    async def fake(target: TargetRef, ctx: ProbeContext, kind: str) -> list[Observation]:
        nonlocal active, peak
        calls[f"{kind}:{target.key if kind == 'completion' else target.provider}"].append(clock.monotonic())
        active += 1
        peak = max(peak, active)
        try:
            if kind == "completion" and target.key == "p1/m1":
                await asyncio.Event().wait()  # hangs forever
            for _ in range(3):
                await asyncio.sleep(0)
        finally:
            active -= 1
        return [Observation.success(t.key, kind=kind, at=ctx.clock.wall()) for t in ctx.report_targets(target)]

    async def cat(t: TargetRef, c: ProbeContext) -> list[Observation]:
        return await fake(t, c, "catalogue")

    async def comp(t: TargetRef, c: ProbeContext) -> list[Observation]:
        return await fake(t, c, "completion")

    probes = "probes: {jitter: 0.2, concurrency: 2, kinds: {catalogue: {interval: 60s}, completion: {interval: 20s, timeout: 50ms}}}"
    sched, sink = _sched(probes, clock, kinds={"catalogue": cat, "completion": comp}, metrics=Metrics())
    horizon, step = 600.0, 1.0
    while clock.monotonic() < horizon:
        await sched.run_due()
        clock.advance(step)

    assert set(calls) == {
        "catalogue:p0",
        "catalogue:p1",
        "completion:p0/m0",
        "completion:p0/m1",
        "completion:p1/m0",
        "completion:p1/m1",
    }
    for key, times in calls.items():
        interval = 60.0 if key.startswith("catalogue") else 20.0
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert all(interval * 0.8 - step <= g <= interval * 1.2 + step for g in gaps), (key, gaps)
        assert len(set(round(g) for g in gaps)) > 1 or interval == 60.0  # jittered, not a fixed beat
        assert abs(len(times) - horizon / interval) <= 2
    assert 1 < peak <= 2  # concurrency bounded by probes.concurrency
    hung = [o for o in sink.observations if o.target == "p1/m1" and o.kind == "completion"]
    assert hung and all(o.error_class is ErrorClass.TIMEOUT and o.code == "probe_timeout" for o in hung)
    others = [o for o in sink.observations if o.target != "p1/m1"]
    assert others and all(o.ok for o in others)  # the hung probe stopped nothing else


async def test_concurrency_never_exceeds_the_semaphore() -> None:
    release = asyncio.Event()
    active = peak = 0

    async def slow(target: TargetRef, ctx: ProbeContext) -> list[Observation]:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await release.wait()
        active -= 1
        return []

    sched, _ = _sched(kinds={"catalogue": slow, "completion": slow})
    runs = [asyncio.create_task(sched.run_probe_job(t, "completion")) for t in sched.config.targets()]
    for _ in range(10):
        await asyncio.sleep(0)
    assert peak == 3  # make_config's concurrency
    release.set()
    await asyncio.gather(*runs)


async def test_a_probe_that_raises_yields_bad_response_naming_the_exception() -> None:
    async def broken(target: TargetRef, ctx: ProbeContext) -> list[Observation]:
        raise KeyError("choices")

    m = Metrics()
    sched, sink = _sched(kinds={"catalogue": broken, "completion": broken}, metrics=m)
    out = await sched.run_probe_job("p0/m1", "completion")
    assert [(o.target, o.error_class, o.code) for o in out] == [("p0/m1", ErrorClass.BAD_RESPONSE, "probe_error")]
    assert "KeyError" in out[0].detail and sink.observations == out
    assert (
        m.registry.get_sample_value(
            "turnout_probe_duration_seconds_count", {"provider": "p0", "model": "m1", "kind": "completion"}
        )
        == 1
    )


async def test_health_decides_which_targets_are_probed_and_skips_are_counted() -> None:
    class Health:
        def should_probe(self, target: str, kind: str) -> bool:
            return target != "p0/m1"

    m = Metrics()
    adapter = ScriptedAdapter(models=["m0", "m1"])
    sched, sink = _sched(metrics=m, health=Health())
    sched.adapter_for = lambda p: adapter
    assert await sched.run_probe_job("p0/m1", "completion") == []
    assert (
        m.registry.get_sample_value(
            "turnout_probes_skipped_total", {"provider": "p0", "model": "m1", "kind": "completion", "reason": "not_due"}
        )
        == 1
    )
    out = await sched.run_probe_job("p0/m0", "catalogue")  # provider-level: reports only the targets health wants
    assert [o.target for o in out] == ["p0/m0"] and out[0].ok
    assert await sched.run_probe_job("nope/x", "completion") == []


async def test_reload_keeps_unchanged_jobs_and_drops_removed_ones() -> None:
    sched, _ = _sched()
    before = dict(sched.jobs)
    sched.set_config(make_config(n_providers=1))
    assert set(sched.jobs) == {k for k in before if "p1" not in k}


@pytest.mark.integration
async def test_apscheduler_fires_jobs_on_the_real_loop_and_shuts_down_cleanly() -> None:
    probes = "probes: {interval: 100ms, jitter: 0.1, timeout: 1s, kinds: {catalogue: {interval: 100ms}, completion: {enabled: false}}}"
    lags: list[float] = []
    metrics = Metrics()
    sched, sink = _sched(probes, metrics=metrics, on_start=lambda key, lag: lags.append(lag))
    sched.adapter_for = lambda p: ScriptedAdapter(models=["m0", "m1"])
    sink.wanted = 8  # two catalogue runs per provider
    sched.start()
    try:
        await asyncio.wait_for(sink.arrived.wait(), timeout=10)
    finally:
        await sched.shutdown()
    assert {o.target for o in sink.observations} == {"p0/m0", "p0/m1", "p1/m0", "p1/m1"}
    assert lags and max(lags) < 1.0
    # the real scheduler, not a test, feeds the lag histogram the TurnoutProbeSchedulerLag alert reads
    assert (metrics.registry.get_sample_value("turnout_scheduler_lag_seconds_count") or 0) >= len(lags)
    assert not sched.running


async def test_a_due_recheck_runs_at_once_with_a_kind_that_sees_the_signal_not_at_the_kinds_interval() -> None:
    """Issue 18 item 1: the first recheck comes about a minute after a withdrawal even though completion probes
    run every 5 minutes; a listing (which cannot see a region block) never makes it."""
    from controlplane.health import HealthModel

    clock = FakeClock()
    cfg = make_config(
        n_providers=1,
        n_models=1,
        probes="probes: {interval: 10s, kinds: {catalogue: {interval: 60s}, completion: {interval: 5m}}}",
    )
    health = HealthModel(cfg, clock, rerank_interval=0.0)
    answers = {"completion": ErrorClass.REGION_BLOCKED}
    ran: list[tuple[str, float]] = []

    def kind_fn(kind: str) -> ProbeFn:
        async def probe(target: TargetRef, ctx: ProbeContext) -> list[Observation]:
            ran.append((kind, clock.monotonic()))
            cls = answers.get(kind, ErrorClass.OK)
            return [
                Observation.from_classification(t.key, _classified(cls), kind=kind, at=clock.wall())
                for t in ctx.report_targets(target)
            ]

        return probe

    class HealthSink:
        def submit(self, obs: Observation) -> None:
            health.ingest(obs)

    s = ProbeScheduler(
        cfg,
        clock,
        session=None,
        sink=HealthSink(),
        adapter_for=lambda p: ScriptedAdapter(),
        health=health,
        kinds={"catalogue": kind_fn("catalogue"), "completion": kind_fn("completion")},
    )
    await s.run_probe_job("p0/m0", "completion")  # withdraws
    assert str(health.states()["p0/m0"]) == "withdrawn"
    ran.clear()
    clock.advance(59)
    assert await s.run_due_rechecks() == [] and ran == []
    clock.advance(1)
    await s.run_due_rechecks()
    assert ran == [("completion", 60.0)], "due: made at once, by a call"
    assert await s.run_due_rechecks() == [], "failed: the next one is 2 minutes out"
    clock.advance(120)
    answers["completion"] = ErrorClass.OK  # the block lifts
    await s.run_due_rechecks()
    assert str(health.states()["p0/m0"]) == "half_open"
    assert [k for k, _ in ran] == ["completion", "completion"]


def _classified(cls: ErrorClass) -> Classification:
    return Classification(cls, status=403 if cls is ErrorClass.REGION_BLOCKED else 200)


async def test_a_hung_probe_never_holds_back_the_next_one_and_at_most_two_run_per_target() -> None:
    clock, release, started = FakeClock(), asyncio.Event(), []

    async def hangs(target: TargetRef, ctx: ProbeContext) -> list[Observation]:
        started.append(clock.monotonic())
        await release.wait()
        return [Observation.success(target.key, kind="completion", at=ctx.clock.wall())]

    metrics = Metrics()
    probes = "probes: {kinds: {completion: {interval: 20s, timeout: 60s}}}"
    sched, sink = _sched(probes, clock, kinds={"catalogue": hangs, "completion": hangs}, metrics=metrics)
    first = asyncio.create_task(sched.run_probe_job("p0/m0", "completion"))
    await asyncio.sleep(0)
    clock.advance(20.0)  # the next one is due while the first still hangs: it starts at once
    second = asyncio.create_task(sched.run_probe_job("p0/m0", "completion"))
    await asyncio.sleep(0)
    assert started == [0.0, 20.0] and sched.in_flight("p0/m0", "completion") == MAX_IN_FLIGHT == 2
    clock.advance(20.0)
    assert await sched.run_probe_job("p0/m0", "completion") == []  # a third while two hang: skipped, counted
    skipped = metrics.probes_skipped_total.labels("p0", "m0", "completion", "in_flight")._value.get()
    assert started == [0.0, 20.0] and skipped == 1
    release.set()
    await asyncio.gather(first, second)
    assert sched.in_flight("p0/m0", "completion") == 0 and len(sink.observations) == 2
    assert len(await sched.run_probe_job("p0/m0", "completion")) == 1  # the bound frees as runs end


async def test_a_hang_is_cut_by_what_is_normal_for_the_job_and_the_timeout_returns_when_history_ages() -> None:
    clock, hang = FakeClock(), False

    async def answers(target: TargetRef, ctx: ProbeContext) -> list[Observation]:
        clock.advance(0.002)  # a normal answer takes 2 ms
        if hang:
            await asyncio.Event().wait()
        return [Observation.success(target.key, kind="completion", at=ctx.clock.wall())]

    probes = "probes: {kinds: {completion: {interval: 20s, timeout: 60s}}}"
    deadlines = ProbeDeadlines(clock, factor=3.0, floor=0.001, min_samples=3)
    sched, _ = _sched(probes, clock, kinds={"catalogue": answers, "completion": answers}, deadlines=deadlines)
    job = sched.job_for("p0/m0", "completion")
    assert job is not None and deadlines.deadline(job.key, 20.0, 60.0) == 60.0  # no history: the timeout
    for _ in range(3):
        await sched.run_probe_job("p0/m0", "completion")
    assert deadlines.deadline(job.key, 20.0, 60.0) == pytest.approx(0.006)
    hang = True
    async with asyncio.timeout(5):  # cut at the learned 6 ms, not the 60 s timeout
        [obs] = await sched.run_probe_job("p0/m0", "completion")
    assert obs.error_class is ErrorClass.TIMEOUT and "learned; timeout 60s" in obs.detail
    clock.advance(10 * 20.0 + 1)  # successes older than ten intervals are forgotten: a slower normal is relearned
    assert deadlines.deadline(job.key, 20.0, 60.0) == 60.0
