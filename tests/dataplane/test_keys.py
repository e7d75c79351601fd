"""The data plane's key gate on its own: who may call, which routes, buckets, budgets, ring reads (clock injected)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.config import DataAuthConfig
from controlplane.keys import Ring, RingKey, hash_key
from controlplane.keys.tokens import new_key
from dataplane.keys import Admission, Caller, KeyGate, Refusal, reset_text
from tests.fakes import FakeClock

START = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
END_OF_DAY = datetime(2026, 12, 3, tzinfo=UTC).timestamp()


def ring_key(key: str, **kw: object) -> RingKey:
    base: dict[str, object] = dict(
        id=key.split("_")[1], name="team", key_hash=hash_key(key), routes=None, rpm=None, tpm=None,
        budget_usd=None, budget_period="day", expires_at=None, spent_usd=0.0, period_end=END_OF_DAY,
    )  # fmt: skip
    base.update(kw)
    return RingKey(**base)  # type: ignore[arg-type]


class Source:
    """A ring the test edits; counts reads."""

    def __init__(self, *keys: RingKey, any_keys: bool = True) -> None:
        self.ring = Ring(any_keys, keys)
        self.reads = 0
        self.fail = False

    async def __call__(self) -> Ring:
        self.reads += 1
        if self.fail:
            raise OSError("control plane away")
        return self.ring


def gate(source: Source | None, clock: FakeClock, **settings: object) -> KeyGate:
    cfg = DataAuthConfig(**settings)  # type: ignore[arg-type]
    return KeyGate(source, clock, lambda: cfg)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def caller(g: KeyGate, key: str) -> Caller:
    c = await g.identify(bearer(key))
    assert isinstance(c, Caller), c
    return c


async def test_no_keys_means_anonymous_unless_required() -> None:
    clock = FakeClock(START)
    open_gate = gate(Source(any_keys=False), clock)
    await open_gate.refresh()
    assert await open_gate.identify({}) is None
    required = gate(Source(any_keys=False), clock, require_key=True)
    await required.refresh()
    refused = await required.identify({})
    assert isinstance(refused, Refusal) and refused.status == 401 and refused.kind == "missing"


async def test_a_gate_that_never_read_its_ring_refuses_everyone() -> None:
    source = Source(any_keys=False)
    source.fail = True
    g = gate(source, FakeClock(START))
    await g.refresh()
    assert isinstance(await g.identify({}), Refusal)


async def test_keys_by_either_header_and_every_way_to_be_wrong() -> None:
    key = new_key("abcd1234")
    source = Source(ring_key(key))
    g = gate(source, FakeClock(START))
    await g.refresh()
    assert (await caller(g, key)).id == "abcd1234"
    assert isinstance(await g.identify({"x-api-key": key}), Caller)
    wrong_secret = key[:-4] + "AAAA"
    for headers in ({}, bearer("sk-unused"), bearer(wrong_secret), bearer(new_key("zzzz9999")), {"authorization": key}):
        refused = await g.identify(headers)
        assert isinstance(refused, Refusal) and refused.status == 401, headers
        assert key not in refused.message and wrong_secret not in refused.message


async def test_an_expired_key_is_refused_at_once_without_a_ring_read() -> None:
    clock = FakeClock(START)
    key = new_key("abcd1234")
    g = gate(Source(ring_key(key, expires_at=START.timestamp() + 60)), clock)
    await g.refresh()
    await caller(g, key)
    clock.advance(60)
    refused = await g.identify(bearer(key))
    assert isinstance(refused, Refusal) and "expired" in refused.message


async def test_an_unknown_key_rereads_the_ring_but_not_for_every_guess() -> None:
    clock = FakeClock(START)
    source = Source(any_keys=True)
    g = gate(source, clock)
    await g.refresh()
    fresh = new_key("newk0001")
    source.ring = Ring(True, (ring_key(fresh),))  # made a moment ago, on another process
    assert isinstance(await g.identify(bearer(fresh)), Caller)
    reads = source.reads
    clock.advance(1)
    for _ in range(50):  # a flood of guesses within a quarter of a second: one read
        await g.identify(bearer(new_key("gues0001")))
    assert source.reads == reads + 1


async def test_revoked_in_process_is_refused_before_the_next_read() -> None:
    key = new_key("abcd1234")
    g = gate(Source(ring_key(key)), FakeClock(START))
    await g.refresh()
    await caller(g, key)
    g.forget("abcd1234")
    g.source = None  # and no re-read could bring it back
    assert isinstance(await g.identify(bearer(key)), Refusal)


async def test_routes_the_key_may_not_use_are_403() -> None:
    key = new_key("abcd1234")
    g = gate(Source(ring_key(key, routes=frozenset({"main"}))), FakeClock(START))
    await g.refresh()
    c = await caller(g, key)
    assert isinstance(g.admit(c, "main"), Admission)
    refused = g.admit(c, "cross")
    assert isinstance(refused, Refusal) and refused.status == 403 and "main" in refused.message
    assert g.allowed(c, ["main", "cross"]) == ["main"]


async def test_requests_per_minute_refill_evenly_and_say_when_to_retry() -> None:
    clock = FakeClock(START)
    key = new_key("abcd1234")
    g = gate(Source(ring_key(key, rpm=2)), clock)
    await g.refresh()
    c = await caller(g, key)
    first = g.admit(c, "main")
    assert isinstance(first, Admission)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"] == "30s"
    assert isinstance(g.admit(c, "main"), Admission)
    refused = g.admit(c, "main")
    assert isinstance(refused, Refusal) and refused.status == 429 and refused.kind == "requests"
    assert refused.headers["retry-after"] == "30" and refused.headers["x-ratelimit-remaining-requests"] == "0"
    clock.advance(29.9)
    assert isinstance(g.admit(c, "main"), Refusal)
    clock.advance(0.1)
    assert isinstance(g.admit(c, "main"), Admission)


async def test_tokens_are_charged_when_the_request_ends_and_debt_refuses() -> None:
    clock = FakeClock(START)
    key = new_key("abcd1234")
    g = gate(Source(ring_key(key, tpm=600)), clock)
    await g.refresh()
    c = await caller(g, key)
    a = g.admit(c, "main")
    assert isinstance(a, Admission) and a.headers["x-ratelimit-remaining-tokens"] == "600"
    g.settle(a, 900, 0.0)  # more than a minute's worth: the key owes 300 tokens
    refused = g.admit(c, "main")
    assert isinstance(refused, Refusal) and refused.kind == "tokens"
    assert refused.headers["retry-after"] == "31"  # 301 tokens at 10 a second
    clock.advance(31)
    assert isinstance(g.admit(c, "main"), Admission)


async def test_a_ring_read_keeps_the_buckets_of_keys_that_stay() -> None:
    clock = FakeClock(START)
    key = new_key("abcd1234")
    g = gate(Source(ring_key(key, rpm=1)), clock)
    await g.refresh()
    c = await caller(g, key)
    assert isinstance(g.admit(c, "main"), Admission)
    await g.refresh()
    assert isinstance(g.admit(await caller(g, key), "main"), Refusal)


async def test_budget_counts_the_store_spend_and_this_process_spend_once() -> None:
    clock = FakeClock(START)
    key = new_key("abcd1234")
    source = Source(ring_key(key, budget_usd=1.0, spent_usd=0.5))
    g = gate(source, clock)
    await g.refresh()
    c = await caller(g, key)
    a = g.admit(c, "main")
    assert isinstance(a, Admission)
    g.settle(a, 10, 0.3)
    assert isinstance(g.admit(c, "main"), Admission)  # 0.8 of 1.0
    g.settle(a, 10, 0.2)
    refused = g.admit(c, "main")
    assert isinstance(refused, Refusal) and refused.status == 429 and refused.kind == "quota"
    # The store has now written this process's spend too: the next read replaces what was counted here.
    source.ring = Ring(True, (ring_key(key, budget_usd=1.0, spent_usd=1.0),))
    await g.refresh()
    assert c.spent_here == 0.0 and isinstance(g.admit(c, "main"), Refusal)
    # A new period begins: the store's figure was for the last one.
    clock.advance(END_OF_DAY - clock.wall().timestamp())
    assert isinstance(g.admit(c, "main"), Admission)


@given(st.floats(min_value=0, max_value=86_400, allow_nan=False))
def test_reset_text_reads_like_openai(seconds: float) -> None:
    text = reset_text(seconds)
    assert text.endswith(("ms", "s")) and not text.startswith("-")
    if seconds >= 60:
        minutes, rest = text[:-1].split("m")
        assert int(minutes) * 60 + int(rest) >= seconds


def test_reset_text_examples() -> None:
    assert [reset_text(s) for s in (0.02, 1.5, 30, 360)] == ["20ms", "1.5s", "30s", "6m0s"]


@pytest.mark.parametrize("settings", [{}, {"require_key": True}])
async def test_a_gate_without_a_source(settings: dict[str, bool]) -> None:
    g = gate(None, FakeClock(START), **settings)
    await g.start()
    got = await g.identify({})
    assert (got is None) is (not settings)


async def test_a_reader_that_gives_up_leaves_the_ring_read_to_finish_and_the_next_read_is_fresh() -> None:
    import asyncio

    release = asyncio.Event()
    source = Source(any_keys=False)

    async def slow() -> Ring:
        await release.wait()
        return await source()

    g = KeyGate(slow, FakeClock(START), lambda: DataAuthConfig())
    waiting = asyncio.ensure_future(g.refresh())
    await asyncio.sleep(0)
    waiting.cancel()  # the client went away while its request waited for the ring
    release.set()
    assert await g.refresh() is True  # the same read, finished
    assert await g.refresh() is True and source.reads == 2  # and a new one after it
