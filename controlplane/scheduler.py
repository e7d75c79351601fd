"""The probe scheduler: every target × enabled probe kind on its interval, with jitter, bounded concurrency
and a deadline per probe.

Three layers, so each can be tested alone:
- planning is pure (`plan_jobs`, `first_delay`, `next_delay`): which jobs exist and when each runs next;
- the job body is a plain coroutine, `ProbeScheduler.run_probe_job(target, kind)`: tests call it with a
  FakeClock; it owns the deadline, the metrics and the translation of hangs and bugs into observations;
- APScheduler's AsyncIOScheduler only fires the job bodies at the planned times (`start()`), and tests can
  drive the same plan by hand with `run_due()`.
A probe that hangs is cut at its deadline (`timeout` observation): `probes.timeout`, or less once the job has
answered a few times (probes/deadline.py: a multiple of its recent answers); one that raises yields
`bad_response` naming the exception type; neither stops any other probe. At most `MAX_IN_FLIGHT` (2) runs of one
job at a time: a hung probe never keeps the next one from starting when due, and a hung target costs two probes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from controlplane import tracing
from controlplane.clock import Clock
from controlplane.config import Config, ProviderConfig
from controlplane.domain import Classification, ErrorClass, Observation, TargetRef
from controlplane.metrics import Metrics, observe_probe
from controlplane.seams import ObservationSink
from probes import PROBE_KINDS, PROVIDER_LEVEL_KINDS, ProbeContext, ProbeFn, ProbeSkipped, applies
from probes.budget import SpendBudget
from probes.deadline import MAX_IN_FLIGHT, ProbeDeadlines

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from adapters.base import ProbeAdapter

__all__ = [
    "ProbeJob",
    "ProbeScheduler",
    "ShouldProbe",
    "DueRechecks",
    "RECHECK_PREFERENCE",
    "plan_jobs",
    "first_delay",
    "next_delay",
    "unit_hash",
    "START_SPREAD_MAX",
]

log = logging.getLogger("turnout.scheduler")

# First runs are spread over min(interval, this) so a restart neither stampedes providers nor waits long.
START_SPREAD_MAX = 30.0


class ShouldProbe(Protocol):
    def should_probe(self, target: str, kind: str) -> bool: ...


class DueRechecks(Protocol):
    def due_rechecks(self) -> list[tuple[str, frozenset[str]]]: ...


# Which kind makes a due recheck when several may: the free one first, the paid completion last.
RECHECK_PREFERENCE = ("count_tokens", "catalogue", "health", "completion")


@dataclass(frozen=True, slots=True)
class ProbeJob:
    """One scheduled unit: a kind for one target, or for one provider (provider-level kinds)."""

    kind: str
    target: TargetRef  # the target passed to the probe function (first of the provider for provider-level kinds)
    targets: tuple[TargetRef, ...]  # every target this job reports on
    interval: float
    timeout: float

    @property
    def key(self) -> str:
        return (
            f"{self.kind}:{self.target.provider}"
            if self.kind in PROVIDER_LEVEL_KINDS
            else f"{self.kind}:{self.target.key}"
        )


# -- pure planning ------------------------------------------------------------------------------
def plan_jobs(config: Config, kinds: Mapping[str, ProbeFn] = PROBE_KINDS) -> list[ProbeJob]:
    """Every job the config asks for: enabled kinds that apply to each provider."""
    jobs: list[ProbeJob] = []
    for kind, kcfg in config.probes.kinds.items():
        if not kcfg.enabled or kind not in kinds:
            continue
        interval, timeout = config.probe_interval(kind), config.probe_timeout(kind)
        for p in config.providers:
            if not applies(kind, p):
                continue
            refs = tuple(TargetRef(p.id, m.name) for m in p.models)
            if kind in PROVIDER_LEVEL_KINDS:
                jobs.append(ProbeJob(kind, refs[0], refs, interval, timeout))
            else:
                jobs.extend(ProbeJob(kind, r, (r,), interval, timeout) for r in refs)
    return jobs


def unit_hash(*parts: object) -> float:
    """A deterministic number in [0, 1) from its inputs: jitter that is random-looking but reproducible, so a
    trigger asked twice about the same run gives the same answer."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def first_delay(key: str, interval: float) -> float:
    """Delay before a job's first run: spread over [0, min(interval, START_SPREAD_MAX))."""
    return min(interval, START_SPREAD_MAX) * unit_hash(key, "first")


def next_delay(key: str, previous: float, interval: float, jitter: float) -> float:
    """Delay from one planned run (`previous`, seconds) to the next: interval × (1 ± jitter), never below 10 % of
    the interval."""
    u = unit_hash(key, round(previous, 6))
    return max(interval * 0.1, interval * (1.0 + jitter * (2.0 * u - 1.0)))


class _JitterTrigger(BaseTrigger):  # type: ignore[misc]
    """APScheduler trigger over the pure plan. `fired` is the planned time of the run just submitted (APScheduler
    asks for the next time right after submitting a run, passing that run's planned time)."""

    def __init__(self, key: str, interval: float, jitter: float) -> None:
        self.key, self.interval, self.jitter = key, interval, jitter
        self.fired: datetime | None = None

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        if previous_fire_time is None:
            return now + timedelta(seconds=first_delay(self.key, self.interval))
        self.fired = previous_fire_time
        nxt = previous_fire_time + timedelta(
            seconds=next_delay(self.key, previous_fire_time.timestamp(), self.interval, self.jitter)
        )
        # Fell far behind (suspended host, overloaded loop): restart the rhythm from now instead of bursting.
        return nxt if nxt > now - timedelta(seconds=self.interval) else now

    def __str__(self) -> str:
        return f"jitter[{self.interval:g}s ±{self.jitter:.0%}]"


# -- the scheduler ------------------------------------------------------------------------------
class ProbeScheduler:
    """Runs probe jobs; observations go to `sink` (the pipeline)."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        *,
        session: aiohttp.ClientSession | None,
        sink: ObservationSink,
        adapter_for: Callable[[ProviderConfig], ProbeAdapter],
        metrics: Metrics | None = None,
        health: ShouldProbe | None = None,
        kinds: Mapping[str, ProbeFn] = PROBE_KINDS,
        budget: SpendBudget | None = None,
        deadlines: ProbeDeadlines | None = None,
        on_start: Callable[[str, float], None] | None = None,
    ) -> None:
        self.clock, self.session, self.sink = clock, session, sink
        self.adapter_for, self.metrics, self.health, self.kinds = adapter_for, metrics, health, kinds
        self.budget = budget if budget is not None else SpendBudget(clock)
        self.deadlines = deadlines if deadlines is not None else ProbeDeadlines(clock)
        self._in_flight: dict[str, int] = {}  # job key → runs started and not finished (scheduled and rechecks)
        self.on_start = on_start  # (job key, lag seconds): the bench listens here
        self._aps: AsyncIOScheduler | None = None
        self._periodic: dict[str, tuple[Callable[[], Awaitable[Any]], float]] = {}
        self._manual_next: dict[str, float] = {}
        self._rechecking: set[str] = set()  # targets whose due recheck is running now
        self.set_config(config)

    # -- configuration ------------------------------------------------------------------------
    def set_config(self, config: Config) -> None:
        """Adopt a (re)loaded config: jobs that did not change keep their rhythm; others are (re)planned."""
        self.config = config
        self._sem = getattr(self, "_sem", None)
        if self._sem is None or getattr(self, "_concurrency", None) != config.probes.concurrency:
            self._sem = asyncio.Semaphore(config.probes.concurrency)
            self._concurrency = config.probes.concurrency
        old: dict[str, ProbeJob] = getattr(self, "jobs", {})
        self.jobs: dict[str, ProbeJob] = {j.key: j for j in plan_jobs(config, self.kinds)}
        self._by_target: dict[tuple[str, str], ProbeJob] = {}
        for j in self.jobs.values():
            for t in j.targets:
                self._by_target[(j.kind, t.key)] = j
        if self._aps is not None:
            for key, job in old.items():
                if self.jobs.get(key) != job and self._aps.get_job(key) is not None:
                    self._aps.remove_job(key)
            for key, job in self.jobs.items():
                if old.get(key) != job:
                    self._add_aps_job(job)
        self._manual_next = {
            k: v for k, v in self._manual_next.items() if k in self.jobs and old.get(k) == self.jobs[k]
        }

    def job_for(self, target: TargetRef | str, kind: str) -> ProbeJob | None:
        key = target.key if isinstance(target, TargetRef) else target
        return self._by_target.get((kind, key))

    # -- the job body -------------------------------------------------------------------------
    async def run_probe_job(self, target: TargetRef | str, kind: str) -> list[Observation]:
        """Run one probe now: consult health, bound concurrency, enforce the deadline, submit the observations.

        Never raises for provider faults, hangs or probe bugs; returns what was submitted."""
        job = self.job_for(target, kind)
        if job is None:
            return []
        fn = self.kinds[kind]
        report = tuple(t for t in job.targets if self._wanted(t, kind))
        if not report:
            self._skipped(job.target, kind, "not_due")
            return []
        provider = self.config.provider(job.target.provider)
        assert provider is not None  # jobs are planned from this config
        if self._in_flight.get(job.key, 0) >= MAX_IN_FLIGHT:
            self._skipped(job.target, kind, "in_flight")
            return []
        self._in_flight[job.key] = self._in_flight.get(job.key, 0) + 1
        try:
            return await self._run(job, fn, report, provider)
        finally:
            self._in_flight[job.key] -= 1

    def in_flight(self, target: TargetRef | str, kind: str) -> int:
        """Runs of the job probing `target` with `kind` started and not yet finished."""
        job = self.job_for(target, kind)
        return 0 if job is None else self._in_flight.get(job.key, 0)

    async def _run(
        self, job: ProbeJob, fn: ProbeFn, report: tuple[TargetRef, ...], provider: ProviderConfig
    ) -> list[Observation]:
        kind = job.kind
        span = _probe_span(job.target, kind, provider) if tracing.tracer() is not None else None
        async with self._sem:  # type: ignore[union-attr]
            started = self.clock.monotonic()
            deadline = self.deadlines.deadline(job.key, job.interval, job.timeout)
            started_at = self.clock.wall()
            try:
                ctx = ProbeContext(
                    session=self.session,  # type: ignore[arg-type]
                    adapter=self.adapter_for(provider),
                    provider=provider,
                    model=provider.model(job.target.model),
                    clock=self.clock,
                    timeout=deadline,
                    completion=self.config.probes.completion,
                    logger=logging.getLogger(f"turnout.probes.{kind}"),
                    budget=self.budget,
                    targets=report if kind in PROVIDER_LEVEL_KINDS else (),
                )
                async with asyncio.timeout(deadline):
                    result = await fn(report[0], ctx)
                observations = [o for o in result if isinstance(o, Observation)]
                if observations and all(o.error_class is ErrorClass.OK for o in observations):
                    self.deadlines.succeeded(job.key, self.clock.monotonic() - started)
            except ProbeSkipped as skip:
                self._skipped(job.target, kind, skip.reason)
                if span is not None:
                    span.set_attribute("turnout.probe.skipped", skip.reason)
                    span.end()
                return []
            except TimeoutError:
                observations = self._classified(
                    report,
                    kind,
                    Classification(
                        ErrorClass.TIMEOUT,
                        code="probe_timeout",
                        detail=f"{kind} probe cut at its {deadline:g}s deadline"
                        + ("" if deadline == job.timeout else f" (learned; timeout {job.timeout:g}s)"),
                    ),
                )
            except Exception as exc:  # a bug in a probe or adapter: classify it, log one line, carry on
                log.warning("%s probe of %s raised %s", kind, job.target, type(exc).__name__)
                observations = self._classified(
                    report,
                    kind,
                    Classification(
                        ErrorClass.BAD_RESPONSE, code="probe_error", detail=f"probe raised {type(exc).__name__}"
                    ),
                )
            duration = self.clock.monotonic() - started
        # Every outcome says when its call began: a call begun before a half_open period is no trial of it.
        observations = [o if o.started_at is not None else o.with_(started_at=started_at) for o in observations]
        if span is not None:
            _end_probe_span(span, observations)
        if self.metrics is not None:
            observe_probe(self.metrics, job.target.key, kind, duration)
            for o in observations:
                cost = o.extra.get("cost_usd")
                if isinstance(cost, int | float) and cost > 0:
                    self.metrics.probe_spend_usd_total.labels(provider.id).inc(cost)
        for o in observations:
            self.sink.submit(o)
        return observations

    def _wanted(self, target: TargetRef, kind: str) -> bool:
        if self.health is None:
            return True
        try:
            return bool(self.health.should_probe(target.key, kind))
        except Exception as exc:  # health must not be able to stop probing
            log.warning("should_probe(%s, %s) raised %s; probing anyway", target, kind, type(exc).__name__)
            return True

    def _classified(self, targets: tuple[TargetRef, ...], kind: str, c: Classification) -> list[Observation]:
        at = self.clock.wall()
        return [Observation.from_classification(t.key, c, kind=kind, at=at) for t in targets]

    def _skipped(self, target: TargetRef, kind: str, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.probes_skipped_total.labels(target.provider, target.model, kind, reason).inc()

    async def run_due_rechecks(self) -> list[Observation]:
        """Recheck, now, every withdrawn target whose recheck is due, with a kind that sees its signal: a probe
        kind's own interval (completion: 5 min by default) must not stretch a 1-minute recheck. Run every few
        seconds by the control plane; one recheck per target at a time."""
        due = getattr(self.health, "due_rechecks", None)
        if due is None:
            return []
        runs: list[tuple[str, str]] = []
        for target, kinds in due():
            if target in self._rechecking:
                continue
            kind = next(
                (k for k in (*RECHECK_PREFERENCE, *sorted(kinds)) if k in kinds and self.job_for(target, k)), None
            )
            if kind is not None:
                runs.append((target, kind))
                self._rechecking.add(target)

        async def one(target: str, kind: str) -> list[Observation]:
            try:
                return await self.run_probe_job(target, kind)
            finally:
                self._rechecking.discard(target)

        results = await asyncio.gather(*(one(t, k) for t, k in runs))
        return [o for batch in results for o in batch]

    # -- driving by hand (tests) ----------------------------------------------------------------
    async def run_due(self) -> list[Observation]:
        """Run, concurrently, every job whose planned time (on `clock.monotonic()`) has come; plan the next.
        The same pure plan as the APScheduler trigger, driven by an injected clock."""
        now = self.clock.monotonic()
        due: list[ProbeJob] = []
        for key, job in self.jobs.items():
            planned = self._manual_next.get(key)
            if planned is None:
                planned = self._manual_next[key] = now + first_delay(key, job.interval)
            if planned <= now:
                due.append(job)
                nxt = planned + next_delay(key, planned, job.interval, self.config.probes.jitter)
                self._manual_next[key] = nxt if nxt > now - job.interval else now
        results = await asyncio.gather(*(self.run_probe_job(j.target, j.kind) for j in due))
        return [o for batch in results for o in batch]

    # -- APScheduler ----------------------------------------------------------------------------
    def add_periodic(self, name: str, fn: Callable[[], Awaitable[Any]], interval: float) -> None:
        """A housekeeping coroutine (health tick, rollups) run every `interval` seconds once started."""
        self._periodic[name] = (fn, interval)
        if self._aps is not None:
            self._aps.add_job(
                self._run_periodic,
                IntervalTrigger(seconds=interval),
                args=(name,),
                id=f"periodic:{name}",
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )

    async def _run_periodic(self, name: str) -> None:
        fn, _ = self._periodic[name]
        try:
            await fn()
        except Exception as exc:
            log.warning("periodic %s failed: %s", name, type(exc).__name__)

    def start(self) -> None:
        """Start firing jobs on the running event loop."""
        if self._aps is not None:
            return
        self._aps = AsyncIOScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        )
        for job in self.jobs.values():
            self._add_aps_job(job)
        for name, (_, interval) in self._periodic.items():
            self._aps.add_job(
                self._run_periodic,
                IntervalTrigger(seconds=interval),
                args=(name,),
                id=f"periodic:{name}",
                replace_existing=True,
            )
        self._aps.start()

    def _add_aps_job(self, job: ProbeJob) -> None:
        assert self._aps is not None
        trigger = _JitterTrigger(job.key, job.interval, self.config.probes.jitter)
        # One more instance than MAX_IN_FLIGHT: run_probe_job's bound (which also counts rechecks) decides and counts
        # the skip, APScheduler's never holds a due run back while a probe hangs.
        self._aps.add_job(
            self._fire,
            trigger,
            args=(job.key, trigger),
            id=job.key,
            replace_existing=True,
            max_instances=MAX_IN_FLIGHT + 1,
        )

    async def _fire(self, key: str, trigger: _JitterTrigger) -> None:
        job = self.jobs.get(key)
        if job is None:
            return
        if trigger.fired is not None:
            lag = max(0.0, (datetime.now(UTC) - trigger.fired).total_seconds())
            if self.metrics is not None:
                self.metrics.scheduler_lag_seconds.observe(lag)
            if self.on_start is not None:
                self.on_start(key, lag)
        try:
            await self.run_probe_job(job.target, job.kind)
        except asyncio.CancelledError:
            return  # shutdown cancels runs in flight; this task is top-level, nothing waits on it

    async def shutdown(self) -> None:
        """Stop firing and cancel probes in flight."""
        if self._aps is None:
            return
        aps, self._aps = self._aps, None
        # The asyncio executor cancels its running jobs on shutdown; wait for them so none outlive us.
        pending = list(getattr(aps._lookup_executor("default"), "_pending_futures", ()))
        aps.shutdown(wait=False)
        await asyncio.gather(*pending, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._aps is not None


def _probe_span(target: TargetRef, kind: str, provider: ProviderConfig) -> Span:
    """One span per probe run (a CLIENT call to the provider), named `probe {kind}`."""
    return tracing.client_span(
        f"probe {kind}",
        None,
        {
            "gen_ai.provider.name": tracing.genai_provider(provider.adapter, provider.flavor, provider.base_url),
            "gen_ai.request.model": target.model,
            "turnout.target": target.key,
            "turnout.probe.kind": kind,
        },
    )


def _end_probe_span(span: Span, observations: list[Observation]) -> None:
    failures = [o for o in observations if o.error_class is not ErrorClass.OK]
    if failures:
        tracing.failed(span, str(failures[0].error_class), failures[0].detail)
    span.end()
