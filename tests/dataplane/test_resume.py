"""Streams that survive a cut (`resume_streams: true`): through the simulator, with the official openai SDK as the
client. Each adapter kind continues a stream cut in each way (connection reset, stall, mid-stream provider error);
the client reads one clean answer with no repeated text, the decision log says `resumed` with both targets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from adapters.base import StreamItem
from adapters.sim import Simulator
from controlplane.decisions import Decision
from dataplane.proxy import build_data_app
from dataplane.resume import CONTINUE_INSTRUCTION, StreamTap, continuation_body, remaining_output, sum_usage
from tests.dataplane.conftest import KEY, parse_with_key, start_app
from tests.dataplane.helpers import Rt, StaticTables, make_table
from tests.fakes import FakeClock

pytestmark = pytest.mark.integration

ANSWER = "The quick brown fox jumps over the lazy dog, then naps under the old oak tree until dusk."
MSG: Any = [{"role": "user", "content": "tell me about the fox"}]
FAMILIES = {"openai": ("oa", "ob"), "anthropic": ("an", "an2"), "gemini": ("gg", "gg2")}


def _sim_config() -> dict[str, Any]:
    providers = [
        {"id": pid, "family": family, "api_key": KEY, "models": [{"name": "m", "answer": ANSWER}]}
        for family, ids in FAMILIES.items()
        for pid in ids
    ]
    return {"seed": 1, "providers": providers}


def _turnout_yaml(sim: Simulator) -> str:
    providers = "".join(
        f'  - {{id: {pid}, adapter: {family}, base_url: "{sim.base_url(pid)}", api_key: "${{SIM_KEY}}",'
        f" models: [{{name: m, price: {{input: 1, output: 2}}}}]}}\n"
        for family, ids in FAMILIES.items()
        for pid in ids
    )
    routes = "".join(
        f"  - {{name: {family}, targets: [{a}/m, {b}/m], resume_streams: true}}\n"
        for family, (a, b) in FAMILIES.items()
    )
    return (
        f"providers:\n{providers}routes:\n{routes}"
        "  - {name: plain, targets: [oa/m, ob/m]}\n"
        "  - {name: across, targets: [oa/m, an/m, gg/m], resume_streams: true}\n"
        "dataplane: {first_byte_timeout: 2s, stall_timeout: 1s, total_timeout: 10s, connect_timeout: 1s}\n"
    )


class Records:
    def __init__(self) -> None:
        self.got: list[Decision] = []

    def __call__(self, d: Decision) -> None:
        self.got.append(d)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator.from_yaml(_sim_config(), clock=FakeClock(), admin=False) as s:
        yield s


@pytest.fixture
async def setup(sim: Simulator) -> AsyncIterator[tuple[openai.AsyncOpenAI, Records, Rt]]:
    cfg = parse_with_key(_turnout_yaml(sim))
    records = Records()
    rt = Rt(cfg, StaticTables(make_table(cfg)), forward_decision=records)
    runner, port = await start_app(build_data_app(rt))
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="client-key", max_retries=0)
    yield client, records, rt
    await client.close()
    await runner.cleanup()


async def _read(client: openai.AsyncOpenAI, route: str, usage: bool = False) -> tuple[str, list[Any]]:
    stream = await client.chat.completions.create(
        model=route, messages=MSG, stream=True, stream_options={"include_usage": True} if usage else None
    )
    chunks = [c async for c in stream]
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("cut", ["reset", "stall", "mid_stream_error"])
async def test_a_cut_stream_is_continued_by_the_next_target_without_repeating_a_word(
    sim: Simulator, setup: tuple[openai.AsyncOpenAI, Records, Rt], family: str, cut: str
) -> None:
    client, records, rt = setup
    first, second = FAMILIES[family]
    sim.set_fault(first, cut)
    sim.set_fault(first, "slow_tokens", rate=50)  # tokens in separate reads: the first ones reach the client
    text, chunks = await _read(client, family, usage=True)
    assert text == ANSWER  # the stitched answer is the clean one: no repeated prefix, no missing word
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]  # the continuing target's finish reason, once
    assert len({c.id for c in chunks}) == 1  # one answer: the continuation carries the first stream's id
    usage = [c.usage for c in chunks if c.usage is not None]  # Gemini reports usage on every chunk: the last counts
    assert usage and usage[-1].completion_tokens > 0
    [d] = records.got
    assert d.outcome == "resumed" and d.target == f"{second}/m" and d.status == 200
    assert [a[0] for a in d.attempts] == [f"{first}/m", f"{second}/m"]
    assert d.attempts[0][1] != "ok" and d.attempts[1][1] == "ok"
    assert d.tokens_out == usage[-1].completion_tokens  # the client's usage is the decision's: summed the same way
    assert sim.requests(second) == 1
    classes = [str(o.error_class) for o in rt.sink.observations]
    assert classes[-1] == "ok" and classes[0] != "ok"


@pytest.mark.parametrize("family", list(FAMILIES))
async def test_a_resumed_answer_stays_within_the_requested_max_tokens(
    sim: Simulator, setup: tuple[openai.AsyncOpenAI, Records, Rt], family: str
) -> None:
    """The continuation asks only for what is left of max_tokens (the tokens sent estimated from the text): the
    stitched answer is no longer than the client asked for, and ends with `length` (the sim counts words)."""
    client, records, _ = setup
    first, _second = FAMILIES[family]
    sim.set_fault(first, "reset")
    sim.set_fault(first, "slow_tokens", rate=50)
    limit = 12  # of the answer's 18 words
    stream = await client.chat.completions.create(model=family, messages=MSG, stream=True, max_tokens=limit)
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert ANSWER.startswith(text) and text
    assert len(text.split()) <= limit, text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    [d] = records.got
    assert d.outcome == "resumed"


def test_a_continuation_asks_for_what_is_left_of_the_output_size() -> None:
    body: dict[str, Any] = {"messages": MSG, "max_tokens": 100, "max_completion_tokens": 3, "stream": True}
    out = continuation_body(body, "x" * 40, "openai")  # 40 characters: about 10 tokens used
    assert out["max_tokens"] == 90 and out["max_completion_tokens"] == 1  # never below one
    assert remaining_output({"max_output_tokens": 50, "input": "hi"}, "abc") == {"max_output_tokens": 49, "input": "hi"}
    assert remaining_output({"input": "hi"}, "abc") == {"input": "hi"}  # no size asked: none set


async def test_continuation_across_adapter_kinds_and_a_second_cut(
    sim: Simulator, setup: tuple[openai.AsyncOpenAI, Records, Rt]
) -> None:
    client, records, _ = setup
    for pid in ("oa", "an"):  # the first continuation is cut too: the third target finishes the answer
        sim.set_fault(pid, "reset")
        sim.set_fault(pid, "slow_tokens", rate=50)
    text, _ = await _read(client, "across")
    assert text == ANSWER
    [d] = records.got
    assert d.outcome == "resumed" and [a[0] for a in d.attempts] == ["oa/m", "an/m", "gg/m"]


async def test_without_resume_streams_a_cut_still_ends_with_the_error_event(
    sim: Simulator, setup: tuple[openai.AsyncOpenAI, Records, Rt]
) -> None:
    client, records, _ = setup
    sim.set_fault("oa", "reset")
    sim.set_fault("oa", "slow_tokens", rate=50)
    with pytest.raises(openai.APIError):
        await _read(client, "plain")
    assert sim.requests("ob") == 0
    assert records.got[0].outcome == "stream_error"


async def test_a_stream_emitting_tool_calls_is_not_resumed(
    sim: Simulator, setup: tuple[openai.AsyncOpenAI, Records, Rt]
) -> None:
    client, records, _ = setup
    sim.set_fault("oa", "reset")
    sim.set_fault("oa", "slow_tokens", rate=50)
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    stream = await client.chat.completions.create(
        model="openai", messages=MSG, stream=True, tools=tools, tool_choice="required"
    )
    with pytest.raises(openai.APIError):
        [c async for c in stream]
    assert sim.requests("ob") == 0
    assert records.got[0].outcome == "stream_error"


def test_continuation_bodies_prefill_anthropic_and_gemini_and_ask_openai_to_continue() -> None:
    body = {"model": "r", "messages": MSG, "stream": True}
    an = continuation_body(body, "The quick ", "anthropic")
    assert an["messages"][-1] == {"role": "assistant", "content": "The quick"}  # no trailing blank in a prefill
    gg = continuation_body(body, "The quick ", "gemini")
    assert gg["messages"][-1] == {"role": "assistant", "content": "The quick "}
    oa = continuation_body(body, "The quick ", "openai")
    assert oa["messages"][-2:] == [
        {"role": "assistant", "content": "The quick "},
        {"role": "user", "content": CONTINUE_INSTRUCTION},
    ]
    assert body["messages"] == MSG  # the original request is not changed


def test_the_tap_drops_the_continuations_preamble_and_leading_blank_and_sums_usage() -> None:
    tap = StreamTap()

    def chunk(delta: dict[str, Any], **kw: Any) -> StreamItem:
        doc = {"id": kw.pop("id", "a"), "created": 1, "model": "m1", "choices": [{"index": 0, "delta": delta}], **kw}
        return StreamItem("chunk", chunk=doc, content=bool(delta.get("content")), raw=b"raw")

    assert tap(chunk({"content": "The quick "})) is not None
    assert tap.sent == "The quick " and tap.resumable
    tap.continue_with({"prompt_tokens": 5, "completion_tokens": 2})
    assert tap(StreamItem("keepalive", chunk={"choices": [{"delta": {"role": "assistant"}}]})) is None
    out = tap(chunk({"content": " brown"}, id="b"))
    assert out is not None and out.raw is None and out.chunk is not None
    assert out.chunk["id"] == "a" and out.chunk["choices"][0]["delta"]["content"] == "brown"
    u = tap(
        StreamItem("chunk", chunk={"id": "b", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}})
    )
    assert u is not None and u.chunk is not None and u.chunk["usage"] == {"prompt_tokens": 14, "completion_tokens": 5}
    assert sum_usage(None, None) is None and sum_usage({"a": 1}, None) == {"a": 1}
