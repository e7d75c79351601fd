"""`POST /v1/messages` and `/v1/messages/count_tokens` through Turnout with the official `anthropic` SDK: plain and
streamed, a tool round trip, failover from a faulted primary of each adapter kind, a cut stream ending with
Anthropic's error event, errors in Anthropic's shape, and `GET /v1/models` in Anthropic's list shape."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import pytest

from tests.dataplane.clients.conftest import CHAT_ROUTES, TARGET, ClientsEnv

pytestmark = pytest.mark.integration

TOOL: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HI: Any = [{"role": "user", "content": "Say hello"}]


@pytest.mark.parametrize("route", list(CHAT_ROUTES))
async def test_a_plain_message_comes_from_the_primary_of_each_adapter_kind(env: ClientsEnv, route: str) -> None:
    primary, _ = CHAT_ROUTES[route]
    raw = await env.an.messages.with_raw_response.create(
        model=route, max_tokens=64, system="be brief", messages=HI, stop_sequences=["zzz"]
    )
    msg = await raw.parse()
    assert raw.headers["x-turnout-target"] == TARGET[primary]
    assert msg.type == "message" and msg.role == "assistant" and msg.stop_reason == "end_turn"
    assert msg.content[0].type == "text" and msg.content[0].text.startswith("Hello from " + TARGET[primary])
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    endpoint = {"oa": "chat_completions", "vl": "chat_completions", "an": "messages", "gg": "generate_content"}[primary]
    assert env.sim.requests(primary, endpoint=endpoint) == 1


@pytest.mark.parametrize("route", list(CHAT_ROUTES))
async def test_a_failover_worthy_fault_at_the_primary_is_answered_by_the_next_target(
    env: ClientsEnv, route: str
) -> None:
    primary, fallback = CHAT_ROUTES[route]
    env.sim.set_fault(primary, "overloaded")
    raw = await env.an.messages.with_raw_response.create(model=route, max_tokens=64, messages=HI)
    assert raw.headers["x-turnout-target"] == TARGET[fallback]
    assert (await raw.parse()).content[0].text.startswith("Hello from " + TARGET[fallback])  # type: ignore[union-attr]
    assert env.rt.sink.classes(TARGET[primary]) == ["overloaded"]
    assert env.metric("turnout_dataplane_requests_total", {"route": route, "outcome": "ok", "api": "messages"}) == 1


@pytest.mark.parametrize("route", list(CHAT_ROUTES))
async def test_a_stream_fails_over_before_content_and_follows_anthropic_s_event_sequence(
    env: ClientsEnv, route: str
) -> None:
    primary, fallback = CHAT_ROUTES[route]
    env.sim.set_fault(primary, "overloaded")
    kinds: list[str] = []
    async with env.an.messages.stream(model=route, max_tokens=64, messages=HI) as stream:
        async for ev in stream:
            kinds.append(ev.type)
        final = await stream.get_final_message()
    assert kinds[0] == "message_start" and "content_block_delta" in kinds and kinds[-1] == "message_stop"
    assert kinds.index("content_block_start") < kinds.index("content_block_delta") < kinds.index("content_block_stop")
    assert "message_delta" in kinds
    assert final.content[0].text.startswith("Hello from " + TARGET[fallback])  # type: ignore[union-attr]
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("route", list(CHAT_ROUTES))
@pytest.mark.parametrize("stream", [False, True])
async def test_a_tool_round_trip(env: ClientsEnv, route: str, stream: bool) -> None:
    primary, _ = CHAT_ROUTES[route]
    ask: Any = [{"role": "user", "content": "Weather in Oslo?"}]
    first: Any
    if stream:
        async with env.an.messages.stream(
            model=route, max_tokens=64, messages=ask, tools=[TOOL], tool_choice={"type": "any"}
        ) as s:
            first = await s.get_final_message()
    else:
        first = await env.an.messages.create(
            model=route, max_tokens=64, messages=ask, tools=[TOOL], tool_choice={"type": "any"}
        )
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and "city" in use.input
    turns: Any = [
        *ask,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "-3 C"}]},
    ]
    second = await env.an.messages.create(model=route, max_tokens=64, tools=[TOOL], messages=turns)
    assert second.content[0].text.startswith("Hello from " + TARGET[primary])  # type: ignore[union-attr]


@pytest.mark.parametrize("route", list(CHAT_ROUTES))
async def test_a_stream_cut_after_content_ends_with_anthropic_s_error_event(env: ClientsEnv, route: str) -> None:
    primary, _ = CHAT_ROUTES[route]
    env.sim.set_fault(primary, "reset")
    kinds: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        stream = await env.an.messages.create(
            model=route,
            max_tokens=64,
            messages=[{"role": "user", "content": "Say hello to the wide world"}],
            stream=True,
        )
        async for ev in stream:
            kinds.append(ev.type)
    assert "content_block_delta" in kinds and "message_stop" not in kinds
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert (
        env.metric("turnout_dataplane_requests_total", {"route": route, "outcome": "stream_error", "api": "messages"})
        == 1
    )


@pytest.mark.parametrize("route", ["r-anthropic", "r-gemini", "r-native"])
async def test_count_tokens_is_answered_by_a_target_that_can_count(env: ClientsEnv, route: str) -> None:
    raw = await env.an.messages.with_raw_response.count_tokens(model=route, system="be brief", messages=HI)
    counted = await raw.parse()
    assert counted.input_tokens > 0
    # the OpenAI host has no token-counting endpoint: r-native's primary is skipped for Anthropic
    expected = {"r-anthropic": "an/claude-x", "r-gemini": "gg/gem-x", "r-native": "an/claude-x"}[route]
    assert raw.headers["x-turnout-target"] == expected


async def test_count_tokens_on_a_route_with_no_target_that_can_count_is_a_400_naming_why(env: ClientsEnv) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await env.an.messages.count_tokens(model="r-compat", messages=HI)
    assert "no token-counting endpoint" in info.value.message
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


async def test_bad_input_is_an_anthropic_shaped_400_naming_the_field(env: ClientsEnv) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await env.an.messages.create(model="r-compat", max_tokens=0, messages=HI)
    assert info.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: required: a positive integer, got 0"},
    }


async def test_an_embedding_route_is_a_400_naming_why(env: ClientsEnv) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await env.an.messages.create(model="e-openai", max_tokens=8, messages=HI)
    assert "serves embedding models" in info.value.message and "POST /v1/embeddings" in info.value.message


async def test_exhausted_is_anthropic_shaped_with_every_attempt(env: ClientsEnv) -> None:
    env.sim.set_fault("an", "overloaded")
    env.sim.set_fault("gg", "overloaded")
    with pytest.raises(anthropic.APIStatusError) as info:
        await env.an.messages.create(model="r-anthropic", max_tokens=8, messages=HI)
    assert info.value.status_code == 503
    err = info.value.body["error"]  # type: ignore[index]
    assert err["type"] == "overloaded_error"
    assert [a["target"] for a in err["attempts"]] == ["an/claude-x", "gg/gem-x"]


async def test_models_answer_in_anthropic_s_list_shape_when_asked_with_anthropic_version(env: ClientsEnv) -> None:
    page = await env.an.models.list()
    ids = [m.id for m in page.data]
    assert ids[:2] == ["r-native", "r-compat"] and all(m.type == "model" for m in page.data)
    async with aiohttp.ClientSession() as http, http.get(f"{env.url}/v1/models") as r:
        assert (await r.json())["object"] == "list"  # without the header: OpenAI's shape


async def test_x_api_key_and_bearer_are_both_accepted(env: ClientsEnv) -> None:
    body = {"model": "r-compat", "max_tokens": 8, "messages": HI}
    async with aiohttp.ClientSession() as http:
        for headers in ({"x-api-key": "k", "anthropic-version": "2023-06-01"}, {"authorization": "Bearer k"}):
            async with http.post(f"{env.url}/v1/messages", json=body, headers=headers) as r:
                assert r.status == 200 and (await r.json())["type"] == "message"


async def test_turnout_preferences_apply_to_the_messages_api(env: ClientsEnv) -> None:
    raw = await env.an.messages.with_raw_response.create(
        model="r-native", max_tokens=8, messages=HI, extra_headers={"x-turnout-allow-fallbacks": "false"}
    )
    assert raw.headers["x-turnout-target"] == "oa/gpt-x"
    env.sim.set_fault("oa", "overloaded")
    with pytest.raises(anthropic.APIStatusError) as info:
        await env.an.messages.create(
            model="r-native", max_tokens=8, messages=HI, extra_headers={"x-turnout-allow-fallbacks": "false"}
        )
    assert info.value.status_code == 503 and env.sim.requests("an") == 0
