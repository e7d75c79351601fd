"""The one failover loop on its own (dataplane/failover.py), with scripted attempts: order, every error kept,
the caller's mistake ends it, retry-once, and the panel's options (replacement, usable)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from controlplane.config import ProviderConfig
from controlplane.domain import Classification, ErrorClass
from dataplane.attempts import Opened, UpstreamAttempt
from dataplane.failover import Answer, AttemptOutcome, Exhausted, LoopOptions, first_answer
from dataplane.selection import Candidate

OK, TIMEOUT, CONNECT, CLIENT = ErrorClass.OK, ErrorClass.TIMEOUT, ErrorClass.CONNECT, ErrorClass.CLIENT_ERROR


def _cand(target: str) -> Candidate:
    pid, _, model = target.partition("/")
    provider = ProviderConfig.model_validate(
        {"id": pid, "adapter": "openai", "base_url": f"http://127.0.0.1:9/{pid}", "models": [{"name": model}]}
    )
    return Candidate(target, provider, model, "openai")


def _opened(cls: ErrorClass, text: str = "hi") -> Opened:
    response = {"choices": [{"message": {"role": "assistant", "content": text}}]} if cls is OK else None
    return Opened(Classification(cls, status=200 if cls is OK else 503), latency_s=0.01, response=response)


class _Scripted:
    """An attempt whose open() gives the next scripted answer for its target."""

    def __init__(self, cand: Candidate, opened: Opened, harness: _Harness) -> None:
        self.cand, self._opened, self._h = cand, opened, harness

    async def open(self) -> Opened:
        return self._opened

    def close(self, *, reuse: bool = False) -> None:
        self._h.closed.append((self.cand.target, reuse))


class _Harness:
    """Scripted answers per target, and what the loop did: starts, closes, reports, moves."""

    def __init__(self, script: dict[str, list[Opened]]) -> None:
        self.script = script
        self.started: list[str] = []
        self.closed: list[tuple[str, bool]] = []
        self.failed_at: list[tuple[str, str]] = []
        self.moves: list[ErrorClass] = []
        self.tried: list[AttemptOutcome] = []

    def start(self, c: Candidate) -> UpstreamAttempt:
        self.started.append(c.target)
        return cast(UpstreamAttempt, _Scripted(c, self.script[c.target].pop(0), self))

    def failed(self, cand: Candidate, opened: Opened) -> None:
        self.failed_at.append((cand.target, str(opened.classification.error_class)))

    def failing_over(self, error_class: ErrorClass) -> None:
        self.moves.append(error_class)

    async def run(self, cands: list[Candidate], **opts: Any) -> Answer:
        deadline = asyncio.get_running_loop().time() + 30
        options = LoopOptions(max_attempts=opts.pop("max_attempts", 5), deadline=deadline, **opts)
        return await first_answer(cands, self.start, self, options, tried=self.tried)


async def test_candidates_are_tried_in_order_and_every_error_is_kept() -> None:
    h = _Harness({"a/m": [_opened(TIMEOUT)], "b/m": [_opened(CONNECT)], "c/m": [_opened(OK)]})
    answer = await h.run([_cand("a/m"), _cand("b/m"), _cand("c/m")])
    assert answer.cand.target == "c/m"
    assert [(t.target, t.error_class) for t in h.tried] == [("a/m", TIMEOUT), ("b/m", CONNECT), ("c/m", OK)]
    assert h.failed_at == [("a/m", "timeout"), ("b/m", "connect")]
    assert h.moves == [TIMEOUT, CONNECT]
    assert ("c/m", False) not in h.closed  # the answer stays open for the handler


async def test_exhausted_lists_every_attempt() -> None:
    h = _Harness({"a/m": [_opened(TIMEOUT)], "b/m": [_opened(TIMEOUT)]})
    with pytest.raises(Exhausted) as exc:
        await h.run([_cand("a/m"), _cand("b/m")])
    assert [t.target for t in exc.value.tried] == ["a/m", "b/m"]
    assert exc.value.client_error is None


async def test_the_callers_mistake_ends_the_loop() -> None:
    h = _Harness({"a/m": [_opened(CLIENT)], "b/m": [_opened(OK)]})
    with pytest.raises(Exhausted) as exc:
        await h.run([_cand("a/m"), _cand("b/m")])
    assert h.started == ["a/m"] and exc.value.client_error is not None


async def test_retry_once_retries_the_same_target_once() -> None:
    h = _Harness({"a/m": [_opened(CONNECT), _opened(CONNECT)], "b/m": [_opened(OK)]})
    answer = await h.run([_cand("a/m"), _cand("b/m")], retry_once=True)
    assert h.started == ["a/m", "a/m", "b/m"] and answer.cand.target == "b/m"


async def test_replacement_is_asked_only_once_the_given_candidates_failed() -> None:
    pool = [_cand("r1/m"), _cand("r2/m")]
    asked: list[list[str]] = []
    h = _Harness({"a/m": [_opened(TIMEOUT)], "r1/m": [_opened(TIMEOUT)], "r2/m": [_opened(OK)]})

    def replacement() -> Candidate | None:
        asked.append(list(h.started))
        return pool.pop(0) if pool else None

    answer = await h.run([_cand("a/m")], replacement=replacement)
    assert answer.cand.target == "r2/m"
    assert asked == [["a/m"], ["a/m", "r1/m"]]  # asked after each failure, never ahead of time


async def test_an_unusable_answer_moves_on_without_counting_as_a_failure_class() -> None:
    h = _Harness({"a/m": [_opened(OK, text="  ")], "b/m": [_opened(OK, text="answer")]})

    def has_text(opened: Opened) -> bool:
        choices = (opened.response or {}).get("choices") or [{}]
        return bool(str(choices[0].get("message", {}).get("content", "")).strip())

    answer = await h.run([_cand("a/m"), _cand("b/m")], usable=has_text)
    assert answer.cand.target == "b/m"
    assert h.failed_at == [("a/m", "ok")]  # reported to the caller, classified as the success it was
    assert ("a/m", True) in h.closed  # its whole answer was read: the connection goes back to the pool
    assert [t.error_class for t in h.tried] == [OK, OK] and h.tried[0].detail == "unusable answer"
