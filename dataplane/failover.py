"""The one failover loop: candidates in, one committable answer or an `Exhausted` error listing every attempt out.

Every client API and every panel stage goes through `first_answer` (tensorzero's routing loop is the shape). A
handler parses its request into the common form (candidates from dataplane/selection.py, an OpenAI-shaped body),
calls the loop with a way to start an attempt and a `Report` for what each failed attempt leaves behind, and
writes the answer in its own shape. What differs between callers are options of the loop, not copies of it:

- `retry_once`: a `connect` or `server_error` is retried once on the same target (jitter for a server error) while
  enough of the deadline is left (provider-semantics.md §6, R1), unless the upstream said `x-should-retry: false`;
- `larger_context`: a context-length refusal moves to the candidates with a larger context window;
- `hedging`: after the primary's recent p95 without an answer, the next candidate races it (dataplane/hedging.py);
- `replacement`: asked for one more candidate when the given ones are used up (a panel member slot chooses its
  next target only once the previous one failed, from a pool the other slots draw on too);
- `usable`: a committable answer the caller cannot use (a panel member's empty text) is passed to
  `Report.failed` like a failure, without counting against the target, and the loop moves on.

The last attempt the loop can make (no candidate left, or the last of `max_attempts`) waits the configured
first-byte timeout, not its target's learned one (dataplane/deadlines.py): with nowhere left to go, cutting a slow
answer early would only turn it into an error. A `client_error` (the caller's own mistake) ends the loop: no other target would answer differently. Every
attempt's outcome is kept in order, in `tried`, the answer's too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from controlplane.config import HedgingConfig
from controlplane.domain import ErrorClass
from dataplane.attempts import Opened, UpstreamAttempt
from dataplane.hedging import hedged_open
from dataplane.selection import Candidate

__all__ = [
    "DEADLINE_CUT",
    "AttemptOutcome",
    "Answer",
    "Exhausted",
    "LoopOptions",
    "Report",
    "StartAttempt",
    "first_answer",
]

DEADLINE_CUT = "deadline_cut"  # the decision log's class for an attempt cut by its learned first-byte deadline
_R1_CLASSES = frozenset({ErrorClass.CONNECT, ErrorClass.SERVER_ERROR})
_R1_MIN_REMAINING_S = 1.0  # retry the same target only when this much of the request's deadline is left


@dataclass(slots=True)
class AttemptOutcome:
    """One attempt, as the trail, the decision log and the exhausted error show it."""

    target: str
    error_class: ErrorClass
    status: int | None
    detail: str
    latency_s: float | None
    deadline_cut: bool = False  # cut by the target's learned first-byte deadline (dataplane/deadlines.py)

    @property
    def label(self) -> str:
        """The attempt's class as the decision log records it: `deadline_cut` for a learned-deadline timeout."""
        return DEADLINE_CUT if self.deadline_cut else str(self.error_class)

    def brief(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "error_class": self.label,
            "status": self.status,
            "detail": self.detail,
            "latency_ms": None if self.latency_s is None else round(self.latency_s * 1000, 1),
        }


@dataclass(slots=True)
class Answer:
    """The committable answer: the attempt (still open: a stream is pumped by the handler) and what it opened."""

    attempt: UpstreamAttempt
    opened: Opened

    @property
    def cand(self) -> Candidate:
        return self.attempt.cand


class Exhausted(Exception):
    """No candidate answered. `tried` holds every attempt in order; `client_error` the refusal that ended the loop
    (the caller's own mistake, returned to the client as it is); `deadline_reached` whether time ran out."""

    def __init__(
        self, tried: list[AttemptOutcome], client_error: tuple[Opened, Candidate] | None, deadline_reached: bool
    ) -> None:
        super().__init__(", ".join(f"{t.target}: {t.error_class}" for t in tried) or "no attempt")
        self.tried, self.client_error, self.deadline_reached = tried, client_error, deadline_reached

    def __repr__(self) -> str:
        return f"Exhausted(tried={self.tried!r}, client_error={self.client_error!r})"


class Report(Protocol):
    """What the loop tells its caller as it goes (observations and metrics: dataplane/outcomes.py)."""

    def failed(self, cand: Candidate, opened: Opened) -> None:
        """One attempt failed before it could be committed, or answered something `LoopOptions.usable` refused
        (`opened.ok` then); called in order, before the connection is closed."""
        ...

    def failing_over(self, error_class: ErrorClass) -> None:
        """The loop moves on to the next candidate after a failure of `error_class`."""
        ...


StartAttempt = Callable[[Candidate], UpstreamAttempt]


@dataclass(slots=True)  # not frozen: built once per request, and a frozen dataclass's __init__ costs ~3x more
class LoopOptions:
    """How one run of the loop behaves (see the module docstring)."""

    max_attempts: int
    deadline: float  # loop time (asyncio) by which the whole request must have its answer
    stream: bool = False  # picks the hedging delay: p95 to the first chunk for a stream, to the body otherwise
    retry_once: bool = False
    larger_context: bool = False
    hedging: HedgingConfig | None = None
    rand: Callable[[], float] = field(default=lambda: 0.5)  # the retry jitter's source
    replacement: Callable[[], Candidate | None] | None = None  # one more candidate once the queue is empty
    usable: Callable[[Opened], bool] | None = None  # False: a committable answer the caller cannot use


async def first_answer(
    candidates: Sequence[Candidate],
    start: StartAttempt,
    report: Report,
    options: LoopOptions,
    *,
    tried: list[AttemptOutcome] | None = None,
    notes: list[str] | None = None,
) -> Answer:
    """Try `candidates` in order until one gives a committable answer; raise Exhausted otherwise. `tried` and
    `notes` (the caller's, so they survive a cancellation) receive every outcome and every move, in order."""
    tried = [] if tried is None else tried
    notes = [] if notes is None else notes
    loop = asyncio.get_running_loop()
    queue: list[Candidate] = list(candidates)
    retried: set[str] = set()
    client_error: tuple[Opened, Candidate] | None = None
    first = True
    while len(tried) < options.max_attempts and loop.time() < options.deadline:
        if not queue:
            more = options.replacement() if options.replacement is not None else None
            if more is None:
                break
            queue.append(more)
        cand = queue.pop(0)
        att = start(cand)
        hedge = options.hedging if first and queue else None
        first = False
        try:
            if hedge is not None:
                p95 = cand.ttft_p95_s if options.stream else cand.latency_p95_s
                delay = max(hedge.min_delay, p95 or 0.0)
                second = queue[0]
                result = await hedged_open(att, partial(start, second), delay)
                for lost, lost_opened in result.failed:
                    _failed(report, tried, lost.cand, lost_opened)
                    lost.close()
                if result.hedged:
                    notes.append(f"hedged: {second.target} started after {delay:.3f}s")
                    queue.remove(second)
                if result.winner is None:
                    continue
                att, opened = result.winner
                cand = att.cand
            else:
                att.last_resort = (not queue and options.replacement is None) or len(tried) + 1 >= options.max_attempts
                opened = await att.open()
        except BaseException:
            att.close()  # the client went away (handler cancelled): nothing counts against the provider
            raise
        if opened.ok:
            c = opened.classification
            if options.usable is not None and not options.usable(opened):
                tried.append(AttemptOutcome(cand.target, ErrorClass.OK, c.status, "unusable answer", opened.latency_s))
                report.failed(cand, opened)
                att.close(reuse=True)  # the whole answer was read: the connection can serve the next request
                continue
            tried.append(AttemptOutcome(cand.target, ErrorClass.OK, c.status, "", opened.latency_s))
            return Answer(att, opened)
        c = opened.classification
        _failed(report, tried, cand, opened)
        att.close()
        if c.error_class is ErrorClass.CLIENT_ERROR:
            if options.larger_context and c.context_exceeded:
                larger = [
                    x
                    for x in queue
                    if x.context_window and (cand.context_window is None or x.context_window > cand.context_window)
                ]
                if larger:
                    notes.append(f"context_exceeded at {cand.target}: moving to a larger context window")
                    queue = larger
                    continue
            client_error = (opened, cand)
            break  # the caller's own mistake: no other target would answer differently
        if (
            options.retry_once
            and c.error_class in _R1_CLASSES
            and cand.target not in retried
            and c.should_retry is not False
            and options.deadline - loop.time() > _R1_MIN_REMAINING_S
        ):
            retried.add(cand.target)
            if c.error_class is ErrorClass.SERVER_ERROR:
                await asyncio.sleep(0.02 + 0.08 * options.rand())  # jitter: not in lockstep on a struggling server
            notes.append(f"retry {cand.target} once after {c.error_class}")
            queue.insert(0, cand)
            continue
        if queue:
            report.failing_over(c.error_class)
    raise Exhausted(tried, client_error, deadline_reached=bool(queue) and loop.time() >= options.deadline)


def _failed(report: Report, tried: list[AttemptOutcome], cand: Candidate, opened: Opened) -> None:
    c = opened.classification
    tried.append(AttemptOutcome(cand.target, c.error_class, c.status, c.detail, opened.latency_s, opened.deadline_cut))
    report.failed(cand, opened)
