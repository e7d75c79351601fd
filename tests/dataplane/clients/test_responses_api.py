"""`POST /v1/responses` through Turnout with the official `openai` SDK: plain and streamed, a function tool round
trip, failover from a faulted primary of each adapter kind, and a cut stream ending with the API's own events."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.dataplane.clients.conftest import CHAT_ROUTES, TARGET, ClientsEnv

pytestmark = pytest.mark.integration

TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.mark.parametrize("route", list(CHAT_ROUTES))
async def test_a_plain_response_comes_from_the_primary_of_each_adapter_kind(env: ClientsEnv, route: str) -> None:
    primary, _ = CHAT_ROUTES[route]
    raw = await env.oa.responses.with_raw_response.create(model=route, input="Say hello", instructions="be brief")
    resp = raw.parse()
    assert raw.headers["x-turnout-target"] == TARGET[primary]
    assert resp.object == "response" and resp.status == "completed"
    assert resp.output_text.startswith("Hello from " + TARGET[primary])
    assert resp.usage is not None and resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    # the native host got the Responses API itself; every other kind got its own API, translated
    endpoint = {"oa": "responses", "vl": "chat_completions", "an": "messages", "gg": "generate_content"}[primary]
    assert env.sim.requests(primary, endpoint=endpoint) == 1
    assert env.sim.requests(primary) == 1


@pytest.mark.parametrize("route", list(CHAT_ROUTES))
async def test_a_failover_worthy_fault_at_the_primary_is_answered_by_the_next_target(
    env: ClientsEnv, route: str
) -> None:
    primary, fallback = CHAT_ROUTES[route]
    env.sim.set_fault(primary, "overloaded")
    raw = await env.oa.responses.with_raw_response.create(model=route, input="Say hello")
    assert raw.headers["x-turnout-target"] == TARGET[fallback]
    assert raw.headers["x-turnout-attempts"] == "2"
    assert raw.parse().output_text.startswith("Hello from " + TARGET[fallback])
    assert env.rt.sink.classes(TARGET[primary]) == ["overloaded"]
    assert env.rt.sink.classes(TARGET[fallback]) == ["ok"]
    assert env.metric("turnout_dataplane_requests_total", {"route": route, "outcome": "ok", "api": "responses"}) == 1
    assert env.metric("turnout_dataplane_failovers_total", {"route": route, "reason": "overloaded"}) == 1


@pytest.mark.parametrize("route", list(CHAT_ROUTES))
async def test_a_stream_fails_over_before_content_and_ends_completed(env: ClientsEnv, route: str) -> None:
    primary, fallback = CHAT_ROUTES[route]
    env.sim.set_fault(primary, "overloaded")
    stream = await env.oa.responses.create(model=route, input="Say hello", stream=True)
    kinds: list[str] = []
    text = ""
    final: Any = None
    async for ev in stream:
        kinds.append(ev.type)
        if ev.type == "response.output_text.delta":
            text += ev.delta
        if ev.type == "response.completed":
            final = ev.response
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_item.added" in kinds and "response.output_text.done" in kinds
    assert text.startswith("Hello from " + TARGET[fallback])
    assert final.output_text == text and final.usage.output_tokens > 0


@pytest.mark.parametrize("route", list(CHAT_ROUTES))
@pytest.mark.parametrize("stream", [False, True])
async def test_a_function_tool_round_trip(env: ClientsEnv, route: str, stream: bool) -> None:
    primary, _ = CHAT_ROUTES[route]
    first: Any
    if stream:
        events = await env.oa.responses.create(
            model=route, input="Weather in Oslo?", tools=[TOOL], tool_choice="required", stream=True
        )
        first = None
        args = ""
        async for ev in events:
            if ev.type == "response.function_call_arguments.delta":
                args += ev.delta
            if ev.type == "response.completed":
                first = ev.response
        assert first is not None and args == first.output[-1].arguments
    else:
        first = await env.oa.responses.create(
            model=route, input="Weather in Oslo?", tools=[TOOL], tool_choice="required"
        )
    call = next(o for o in first.output if o.type == "function_call")
    assert call.name == "get_weather" and '"city"' in call.arguments
    second = await env.oa.responses.create(
        model=route,
        input=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": -3}'},
        ],
        tools=[TOOL],
    )
    assert second.output_text.startswith("Hello from " + TARGET[primary])


@pytest.mark.parametrize("route", list(CHAT_ROUTES))
async def test_a_stream_cut_after_content_ends_with_error_and_response_failed(env: ClientsEnv, route: str) -> None:
    primary, _ = CHAT_ROUTES[route]
    env.sim.set_fault(primary, "reset")
    stream = await env.oa.responses.create(model=route, input="Say hello to the whole wide world", stream=True)
    kinds = [ev.type async for ev in stream]
    assert "response.output_text.delta" in kinds  # content reached the client: no failover after that
    assert kinds[-2:] == ["error", "response.failed"]
    assert "response.completed" not in kinds
    assert (
        env.metric("turnout_dataplane_requests_total", {"route": route, "outcome": "stream_error", "api": "responses"})
        == 1
    )


async def test_a_built_in_tool_on_a_route_without_a_native_target_is_a_400_naming_why(env: ClientsEnv) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await env.oa.responses.create(model="r-anthropic", input="x", tools=[{"type": "web_search"}])
    msg = info.value.message
    assert "cannot serve this request" in msg and "needs a target serving the Responses API natively" in msg
    assert "built-in tool 'web_search'" in msg


async def test_previous_response_id_while_the_store_is_off_is_a_400_naming_the_setting(env: ClientsEnv) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await env.oa.responses.create(model="r-compat", input="x", previous_response_id="resp_1")
    assert "dataplane.responses.store" in info.value.message
    assert info.value.code == "state_not_stored"


async def test_previous_response_id_continues_a_stored_conversation_on_another_target(make_env: Any) -> None:
    env: ClientsEnv = await make_env(dataplane=", responses: {store: true, retention: 10m}")
    first = await env.oa.responses.create(
        model="r-native", input="Weather in Oslo?", tools=[TOOL], tool_choice="required"
    )
    call = next(o for o in first.output if o.type == "function_call")
    assert (await env.oa.responses.retrieve(first.id)).id == first.id  # GET /v1/responses/{id}
    env.sim.set_fault("oa", "overloaded")  # the next turn goes to Anthropic, which never saw the first one
    second = await env.oa.responses.create(
        model="r-native",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "cold"}],
        tools=[TOOL],
    )
    assert second.output_text.startswith("Hello from an/claude-x")
    assert second.previous_response_id == first.id
    assert env.sim.requests("an") == 1


async def test_an_unknown_stored_response_is_a_404(make_env: Any) -> None:
    env: ClientsEnv = await make_env(dataplane=", responses: {store: true}")
    with pytest.raises(openai.NotFoundError) as info:
        await env.oa.responses.retrieve("resp_nope")
    assert "dataplane.responses.retention" in info.value.message


async def test_turnout_preferences_and_the_decision_trail_apply_to_the_responses_api(env: ClientsEnv) -> None:
    raw = await env.oa.responses.with_raw_response.create(
        model="r-native", input="hi", extra_headers={"x-turnout-order": "an", "x-turnout-debug": "1"}
    )
    assert raw.headers["x-turnout-target"] == "an/claude-x"
    trail = raw.parse().model_extra["turnout"]  # type: ignore[index]
    assert trail["api"] == "responses" and trail["candidates"] == ["an/claude-x", "oa/gpt-x"]
    assert '"api":"responses"' in raw.headers["x-turnout-decision"]
