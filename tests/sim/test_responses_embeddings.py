"""The simulator's native OpenAI Responses API and its embeddings (OpenAI and Gemini shapes), read by the
official `openai` SDK and by Turnout's own adapters, with faults from the same catalogue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from adapters.gemini import from_embed_response, to_embed_request
from adapters.sim import Simulator
from tests.sim.conftest import KEY

pytestmark = pytest.mark.integration

TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
async def oa(sim: Simulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=sim.base_url("oa"), api_key=KEY, max_retries=0) as client:
        yield client


async def test_responses_create_answers_with_output_text_and_usage(oa: openai.AsyncOpenAI) -> None:
    resp = await oa.responses.create(model="gpt-x", input="Say hello", instructions="be brief")
    assert resp.output_text == "Hello from oa/gpt-x"
    assert resp.status == "completed" and resp.usage is not None and resp.usage.output_tokens == 3


async def test_responses_stream_is_the_event_sequence_ending_in_completed(oa: openai.AsyncOpenAI) -> None:
    stream = await oa.responses.create(model="gpt-x", input="Say hello", stream=True)
    kinds, text = [], ""
    async for ev in stream:
        kinds.append(ev.type)
        if ev.type == "response.output_text.delta":
            text += ev.delta
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-1] == "response.completed" and text == "Hello from oa/gpt-x"


async def test_a_required_tool_is_called_as_a_function_call_item(oa: openai.AsyncOpenAI) -> None:
    resp = await oa.responses.create(model="gpt-x", input="weather?", tools=[TOOL], tool_choice="required")
    call = resp.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and call.arguments == '{"city": "sim"}'


async def test_a_mid_stream_fault_ends_a_responses_stream_with_error_and_failed(
    sim: Simulator, oa: openai.AsyncOpenAI
) -> None:
    sim.set_fault("oa", "mid_stream_error")
    stream = await oa.responses.create(model="gpt-x", input="Say hello", stream=True)
    kinds = [ev.type async for ev in stream]
    assert kinds[-2:] == ["error", "response.failed"] and "response.completed" not in kinds


async def test_openai_embeddings_are_deterministic_per_model_and_text(oa: openai.AsyncOpenAI) -> None:
    a = await oa.embeddings.create(model="gpt-x", input=["alpha", "beta"], dimensions=8)
    b = await oa.embeddings.create(model="gpt-x", input="alpha", dimensions=8)  # the SDK asks for base64 here
    assert [len(d.embedding) for d in a.data] == [8, 8]
    assert b.data[0].embedding == pytest.approx(a.data[0].embedding, abs=1e-6)
    assert a.data[0].embedding != a.data[1].embedding
    assert a.usage.prompt_tokens > 0


async def test_embedding_faults_come_from_the_catalogue(sim: Simulator, oa: openai.AsyncOpenAI) -> None:
    sim.set_fault("oa", "overloaded")
    with pytest.raises(openai.APIStatusError) as info:
        await oa.embeddings.create(model="gpt-x", input="alpha")
    assert info.value.status_code in (503, 529)


async def test_gemini_batch_embed_contents_round_trips_through_the_adapter(sim: Simulator) -> None:
    body = to_embed_request({"input": ["alpha", "beta"], "dimensions": 4}, "gem-x")
    url = f"{sim.base_url('gg')}/models/gem-x:batchEmbedContents"
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers={"x-goog-api-key": KEY}) as r:
        assert r.status == 200
        doc = await r.json()
    out = from_embed_response(doc, "gem-x")
    assert [row["index"] for row in out["data"]] == [0, 1]
    assert all(len(row["embedding"]) == 4 for row in out["data"])


async def test_gemini_embed_content_answers_one_embedding(sim: Simulator) -> None:
    url = f"{sim.base_url('gg')}/models/gem-x:embedContent"
    body = {"content": {"parts": [{"text": "alpha"}]}}
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers={"x-goog-api-key": KEY}) as r:
        doc = await r.json()
    assert len(doc["embedding"]["values"]) == 16
