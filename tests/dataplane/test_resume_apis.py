"""Streams that survive a cut on the Responses and Messages APIs (`resume_streams: true`): through the simulator,
with the official openai and anthropic SDKs as clients and their stream helpers (which refuse an event out of
order, a changed response id or a reused output index) reading the stitched stream.

Every pair of target kinds, first part × continuer, each cut in each way (connection reset, stall, mid-stream
provider error): a native pass-through (an OpenAI host serving the Responses API, an Anthropic target for
Messages) and a translated one (chat chunks written in the client's events) on either side. The client reads one
response / message: one start, one end, the continuing target's stop, the summed usage, the clean answer with no
repeated text; the decision log says `resumed` with both targets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from adapters.base import StreamItem
from adapters.sim import Simulator
from controlplane.decisions import Decision
from dataplane.api.messages_stream import MessagesChatView, NativeMessages
from dataplane.api.responses_stream import NativeResponses, ResponsesChatView
from dataplane.proxy import build_data_app
from tests.dataplane.conftest import KEY, parse_with_key, start_app
from tests.dataplane.helpers import Rt, StaticTables, make_table
from tests.fakes import FakeClock

pytestmark = pytest.mark.integration

ANSWER = "The quick brown fox jumps over the lazy dog, then naps under the old oak tree until dusk."
ASK = "tell me about the fox"
CUTS = ["reset", "stall", "mid_stream_error"]
# Target kinds → (first-part provider, continuing provider). `native`: an OpenAI host serving the Responses API
# itself; `openai`: an OpenAI-compatible host spoken to in chat. For Messages, Anthropic targets are the native ones.
PROVIDERS = {
    "native": ("oa", "ob"),
    "openai": ("oc", "od"),
    "anthropic": ("an", "an2"),
    "gemini": ("gg", "gg2"),
}
FAMILY = {"oa": "openai", "ob": "openai", "oc": "openai", "od": "openai"} | {
    p: kind for kind in ("anthropic", "gemini") for p in PROVIDERS[kind]
}
RESPONSES_KINDS = ["native", "openai", "anthropic", "gemini"]
MESSAGES_KINDS = ["anthropic", "openai", "gemini"]
PAIRS = {
    "responses": [(a, b) for a in RESPONSES_KINDS for b in RESPONSES_KINDS],
    "messages": [(a, b) for a in MESSAGES_KINDS for b in MESSAGES_KINDS],
}


def _route(api: str, first: str, second: str) -> str:
    return f"{api}-{first}-{second}"


def _sim_config() -> dict[str, Any]:
    providers = [
        {"id": pid, "family": family, "api_key": KEY, "models": [{"name": "m", "answer": ANSWER}]}
        for pid, family in FAMILY.items()
    ]
    return {"seed": 1, "providers": providers}


def _turnout_yaml(sim: Simulator) -> str:
    def provider(pid: str) -> str:
        native = {"oa": "native", "ob": "native", "oc": "translate", "od": "translate"}.get(pid)
        extra = f", responses_api: {native}" if native else ""
        return (
            f'  - {{id: {pid}, adapter: {FAMILY[pid]}, base_url: "{sim.base_url(pid)}", api_key: "${{SIM_KEY}}"'
            f"{extra}, models: [{{name: m, price: {{input: 1, output: 2}}}}]}}\n"
        )

    routes = "".join(
        f"  - {{name: {_route(api, a, b)}, targets: [{PROVIDERS[a][0]}/m, {PROVIDERS[b][1]}/m], resume_streams: true}}\n"
        for api, pairs in PAIRS.items()
        for a, b in pairs
    )
    return (
        f"providers:\n{''.join(provider(p) for p in FAMILY)}routes:\n{routes}"
        "  - {name: plain, targets: [oa/m, an2/m]}\n"
        "  - {name: across, targets: [oa/m, an2/m, gg2/m], resume_streams: true}\n"
        "dataplane: {first_byte_timeout: 2s, stall_timeout: 1s, total_timeout: 10s, connect_timeout: 1s}\n"
    )


@dataclass
class Env:
    sim: Simulator
    rt: Rt
    decisions: list[Decision]
    oa: openai.AsyncOpenAI
    an: anthropic.AsyncAnthropic


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with Simulator.from_yaml(_sim_config(), clock=FakeClock(), admin=False) as sim:
        cfg = parse_with_key(_turnout_yaml(sim))
        decisions: list[Decision] = []
        rt = Rt(cfg, StaticTables(make_table(cfg)), forward_decision=decisions.append)
        runner, port = await start_app(build_data_app(rt))
        root = f"http://127.0.0.1:{port}"
        oa = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="client-key", max_retries=0)
        an = anthropic.AsyncAnthropic(base_url=root, api_key="client-key", max_retries=0)
        yield Env(sim, rt, decisions, oa, an)
        await oa.close()
        await an.close()
        await runner.cleanup()


def _cut(env: Env, provider: str, cut: str) -> None:
    env.sim.set_fault(provider, cut)
    env.sim.set_fault(provider, "slow_tokens", rate=50)  # tokens in separate reads: the first ones reach the client


def _cut_first(env: Env, api: str, first_kind: str, second_kind: str, cut: str) -> tuple[str, str, str]:
    """The route from a `first_kind` target to a `second_kind` one, its first target cut: (route, first, second)."""
    first, second = PROVIDERS[first_kind][0], PROVIDERS[second_kind][1]
    _cut(env, first, cut)
    return _route(api, first_kind, second_kind), first, second


def _assert_resumed(env: Env, api: str, first: str, second: str) -> Decision:
    [d] = env.decisions
    assert d.api == api and d.outcome == "resumed" and d.status == 200 and d.target == f"{second}/m"
    assert [a[0] for a in d.attempts] == [f"{first}/m", f"{second}/m"]
    assert d.attempts[0][1] != "ok" and d.attempts[1][1] == "ok"
    assert env.sim.requests(second) == 1
    return d


_LIFECYCLE = frozenset({"response.created", "response.in_progress", "response.completed"})


async def _read_response(env: Env, route: str) -> tuple[Any, list[Any]]:
    async with env.oa.responses.stream(model=route, input=ASK) as stream:
        events = [ev async for ev in stream]
        final = await stream.get_final_response()
    return final, events


@pytest.mark.parametrize(("first_kind", "second_kind"), PAIRS["responses"])
@pytest.mark.parametrize("cut", CUTS)
async def test_a_cut_responses_stream_is_continued_as_one_response(
    env: Env, first_kind: str, second_kind: str, cut: str
) -> None:
    route, first, second = _cut_first(env, "responses", first_kind, second_kind, cut)
    final, events = await _read_response(env, route)
    assert final.output_text == ANSWER  # the stitched answer is the clean one: no repeated prefix, no missing word
    assert final.status == "completed" and [o.type for o in final.output] == ["message"]
    kinds = [e.type for e in events]
    assert kinds.count("response.created") == 1 and kinds[0] == "response.created"
    assert kinds.count("response.completed") == 1 and kinds[-1] == "response.completed"
    assert "error" not in kinds and "response.failed" not in kinds
    seqs = [e.sequence_number for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one sequence, numbered on without a gap
    assert {e.response.id for e in events if e.type in _LIFECYCLE} == {final.id}
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == ANSWER
    assert kinds.count("response.output_item.added") == 1  # the open message went on: no second item
    d = _assert_resumed(env, "responses", first, second)
    assert final.usage is not None and final.usage.output_tokens > 0
    assert (final.usage.input_tokens, final.usage.output_tokens) == (d.tokens_in, d.tokens_out)  # summed alike


async def _read_message(env: Env, route: str) -> tuple[Any, list[Any]]:
    messages: Any = [{"role": "user", "content": ASK}]
    async with env.an.messages.stream(model=route, max_tokens=256, messages=messages) as stream:
        events = [ev async for ev in stream]
        final = await stream.get_final_message()
    return final, events


_RAW_MESSAGE_EVENTS = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    }
)


@pytest.mark.parametrize(("first_kind", "second_kind"), PAIRS["messages"])
@pytest.mark.parametrize("cut", CUTS)
async def test_a_cut_messages_stream_is_continued_as_one_message(
    env: Env, first_kind: str, second_kind: str, cut: str
) -> None:
    route, first, second = _cut_first(env, "messages", first_kind, second_kind, cut)
    final, events = await _read_message(env, route)
    assert [b.type for b in final.content] == ["text"] and final.content[0].text == ANSWER
    assert final.stop_reason == "end_turn"  # the continuing target's, once
    raw = [e for e in events if e.type in _RAW_MESSAGE_EVENTS]
    kinds = [e.type for e in raw]
    assert kinds[0] == "message_start" and kinds.count("message_start") == 1
    assert kinds[-2:] == ["message_delta", "message_stop"] and kinds.count("message_delta") == 1
    assert kinds.count("content_block_start") == 1 and kinds.count("content_block_stop") == 1  # the block went on
    assert {e.index for e in raw if e.type.startswith("content_block")} == {0}
    assert raw[0].message.id == final.id
    assert "".join(e.delta.text for e in raw if e.type == "content_block_delta") == ANSWER
    d = _assert_resumed(env, "messages", first, second)
    assert final.usage.output_tokens > 0
    assert (final.usage.input_tokens, final.usage.output_tokens) == (d.tokens_in, d.tokens_out)  # summed alike


async def test_a_continuation_cut_in_turn_is_continued_by_a_third_target_of_another_kind(env: Env) -> None:
    _cut(env, "oa", "reset")  # native Responses, then Anthropic translated, then Gemini translated
    _cut(env, "an2", "stall")
    final, events = await _read_response(env, "across")
    assert final.output_text == ANSWER
    seqs = [e.sequence_number for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    [d] = env.decisions
    assert d.outcome == "resumed" and [a[0] for a in d.attempts] == ["oa/m", "an2/m", "gg2/m"]


async def test_a_continuation_cut_with_no_target_left_ends_with_the_error_in_the_same_sequence(env: Env) -> None:
    _cut(env, "oa", "reset")
    _cut(env, "an2", "reset")
    stream = await env.oa.responses.create(model=_route("responses", "native", "anthropic"), input=ASK, stream=True)
    events = [ev async for ev in stream]
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["error", "response.failed"] and kinds.count("response.created") == 1
    seqs = [e.sequence_number for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # the error carries on the continuation's numbering
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert ANSWER.startswith(text) and len(text) < len(ANSWER)  # both parts' text, in order, nothing repeated
    [d] = env.decisions
    assert d.outcome == "stream_error" and [a[0] for a in d.attempts] == ["oa/m", "an2/m"]


async def test_without_resume_streams_a_cut_responses_stream_ends_with_its_error_events(env: Env) -> None:
    _cut(env, "oa", "reset")
    stream = await env.oa.responses.create(model="plain", input=ASK, stream=True)
    kinds = [ev.type async for ev in stream]
    assert "response.output_text.delta" in kinds and kinds[-2:] == ["error", "response.failed"]
    assert env.sim.requests("an2") == 0
    assert env.decisions[0].outcome == "stream_error"


async def test_without_resume_streams_a_cut_messages_stream_ends_with_anthropic_s_error_event(env: Env) -> None:
    _cut(env, "oa", "reset")  # plain's primary speaks chat for a Messages client
    kinds: list[str] = []
    with pytest.raises(anthropic.APIStatusError):
        stream = await env.an.messages.create(
            model="plain", max_tokens=256, messages=[{"role": "user", "content": ASK}], stream=True
        )
        async for ev in stream:
            kinds.append(ev.type)
    assert "content_block_delta" in kinds and "message_stop" not in kinds
    assert env.sim.requests("an2") == 0
    assert env.decisions[0].outcome == "stream_error"


RESPONSES_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
MESSAGES_TOOL: Any = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.mark.parametrize("first_kind", ["native", "anthropic"])
async def test_a_responses_stream_emitting_a_function_call_is_not_resumed(env: Env, first_kind: str) -> None:
    first = PROVIDERS[first_kind][0]
    _cut(env, first, "reset")
    stream = await env.oa.responses.create(
        model=_route("responses", first_kind, "gemini"),
        input=ASK,
        tools=[RESPONSES_TOOL],
        tool_choice="required",
        stream=True,
    )
    kinds = [ev.type async for ev in stream]
    assert "response.function_call_arguments.delta" in kinds and kinds[-2:] == ["error", "response.failed"]
    assert env.sim.requests("gg2") == 0
    assert env.decisions[0].outcome == "stream_error"


@pytest.mark.parametrize("first_kind", ["anthropic", "openai"])
async def test_a_messages_stream_emitting_tool_use_is_not_resumed(env: Env, first_kind: str) -> None:
    first = PROVIDERS[first_kind][0]
    _cut(env, first, "reset")
    kinds: list[str] = []
    with pytest.raises(anthropic.APIStatusError):
        stream = await env.an.messages.create(
            model=_route("messages", first_kind, "gemini"),
            max_tokens=256,
            messages=[{"role": "user", "content": ASK}],
            tools=[MESSAGES_TOOL],
            tool_choice={"type": "any"},
            stream=True,
        )
        async for ev in stream:
            kinds.append(ev.type)
    assert "content_block_start" in kinds and "message_stop" not in kinds
    assert env.sim.requests("gg2") == 0
    assert env.decisions[0].outcome == "stream_error"


def _event(doc: dict[str, Any], **kw: Any) -> StreamItem:
    return StreamItem(kw.pop("kind", "chunk"), chunk=doc, raw=b"event\n\n", **kw)


def test_a_native_responses_writer_carries_on_its_open_message_with_the_next_sequence_number() -> None:
    native = NativeResponses()
    created = {"id": "resp_1", "object": "response", "status": "in_progress", "output": [], "model": "m"}
    msg = {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}
    part = {"type": "output_text", "text": "", "annotations": []}
    native.encode(
        [
            _event({"type": "response.created", "sequence_number": 0, "response": created}, kind="keepalive"),
            _event({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": msg}),
            _event({"type": "response.content_part.added", "sequence_number": 2, "output_index": 0, "part": part}),
            _event({"type": "response.output_text.delta", "sequence_number": 3, "output_index": 0, "delta": "The "}),
        ]
    )
    view = ResponsesChatView()
    more = view(_event({"type": "response.output_text.delta", "output_index": 0, "delta": "fox"}, content=True))
    assert more is not None and more.chunk is not None
    assert more.chunk["choices"][0]["delta"] == {"content": "fox"}
    writer = native.continued()
    assert native.continued() is writer  # one continuation writer for the rest of the stream
    out = writer.encode([more, StreamItem("done")]).decode()
    assert "response.output_item.added" not in out and "response.created" not in out
    assert '"sequence_number":4' in out and '"item_id":"msg_1"' in out
    assert native.final is not None and native.final["id"] == "resp_1"
    assert native.final["output"][0]["content"][0]["text"] == "The fox"


def test_a_native_messages_writer_carries_on_its_open_text_block() -> None:
    native = NativeMessages()
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "usage": {}}
    native.encode(
        [
            _event({"type": "message_start", "message": message}, kind="keepalive"),
            _event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ]
    )
    view = MessagesChatView()
    text = view(_event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "fox"}}))
    end = view(
        _event({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}, finish_reason="stop", usage={"a": 1})
    )
    assert text is not None and end is not None and end.finish_reason == "stop"
    out = native.continued().encode([text, end, StreamItem("done")]).decode()
    assert "message_start" not in out and "content_block_start" not in out
    assert out.index('"index":0,"delta":{"type":"text_delta","text":"fox"}') < out.index("content_block_stop")
    assert out.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n')
    tool = view(
        _event(
            {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f"}}
        )
    )
    assert (
        tool is not None and tool.chunk is not None and tool.chunk["choices"][0]["delta"]["tool_calls"][0]["id"] == "t"
    )
