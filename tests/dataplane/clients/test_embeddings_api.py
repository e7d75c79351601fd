"""`POST /v1/embeddings` through Turnout with the official `openai` SDK: OpenAI-compatible pass-through and Gemini
translated, float and base64, failover between targets of one model, and the refusals that name why."""

from __future__ import annotations

import base64
import struct

import openai
import pytest

from adapters.sim.embeddings import vector
from tests.dataplane.clients.conftest import EMBED_ROUTES, EMBED_TARGET, ClientsEnv

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("route", list(EMBED_ROUTES))
@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_embeddings_come_from_the_primary_of_each_adapter_kind(
    env: ClientsEnv, route: str, encoding: str
) -> None:
    primary, _ = EMBED_ROUTES[route]
    raw = await env.oa.embeddings.with_raw_response.create(
        model=route,
        input=["alpha", "beta"],
        dimensions=8,
        encoding_format=encoding,  # type: ignore[arg-type]
    )
    got = raw.parse()
    assert raw.headers["x-turnout-target"] == EMBED_TARGET[primary]
    assert [d.index for d in got.data] == [0, 1]
    model = EMBED_TARGET[primary].split("/")[1]
    first: object = got.data[0].embedding
    if encoding == "base64":  # asked for explicitly, the SDK hands the string over as it came
        assert isinstance(first, str)
        first = list(struct.unpack("<8f", base64.b64decode(first)))
    assert first == pytest.approx(vector(model, "alpha", 8), abs=1e-6)
    assert got.model == route or got.model == model
    endpoint = {"oa": "embeddings", "gg": "batch_embed_contents"}[primary]
    assert env.sim.requests(primary, endpoint=endpoint) == 1


@pytest.mark.parametrize("route", list(EMBED_ROUTES))
async def test_a_failover_worthy_fault_at_the_primary_is_answered_by_the_next_target_of_the_same_model(
    env: ClientsEnv, route: str
) -> None:
    primary, fallback = EMBED_ROUTES[route]
    env.sim.set_fault(primary, "overloaded")
    raw = await env.oa.embeddings.with_raw_response.create(model=route, input="alpha")
    assert raw.headers["x-turnout-target"] == EMBED_TARGET[fallback]
    assert len(raw.parse().data[0].embedding) == 16
    assert env.rt.sink.classes(EMBED_TARGET[primary]) == ["overloaded"]
    assert env.rt.sink.classes(EMBED_TARGET[fallback]) == ["ok"]
    assert env.metric("turnout_dataplane_requests_total", {"route": route, "outcome": "ok", "api": "embeddings"}) == 1


async def test_usage_is_counted_and_priced(env: ClientsEnv) -> None:
    got = await env.oa.embeddings.create(model="e-openai", input="alpha beta gamma")
    assert got.usage.prompt_tokens > 0
    tokens = env.metric(
        "turnout_dataplane_tokens_total", {"route": "e-openai", "provider": "oa", "model": "emb-x", "direction": "in"}
    )
    assert tokens == got.usage.prompt_tokens


async def test_token_arrays_skip_the_gemini_target(env: ClientsEnv) -> None:
    raw = await env.oa.embeddings.with_raw_response.create(model="e-gemini", input=[[1, 2, 3]])
    assert raw.headers["x-turnout-target"] == "oa/emb-x"


async def test_embeddings_on_a_chat_route_are_a_400_naming_why(env: ClientsEnv) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await env.oa.embeddings.create(model="r-compat", input="alpha")
    assert "'r-compat' serves chat models, which the embeddings API cannot use" in info.value.message


async def test_a_chat_api_on_an_embedding_route_is_a_400_naming_why(env: ClientsEnv) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await env.oa.responses.create(model="e-openai", input="alpha")
    assert "serves embedding models" in info.value.message


async def test_bad_input_names_the_field(env: ClientsEnv) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await env.oa.embeddings.create(model="e-openai", input="alpha", dimensions=0)
    assert "dimensions: must be a positive integer, got 0" in info.value.message
    assert info.value.param == "dimensions"


async def test_chat_completions_on_an_embedding_route_are_a_400_naming_why(env: ClientsEnv) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await env.oa.chat.completions.create(model="e-openai", messages=[{"role": "user", "content": "x"}])
    assert "'e-openai' serves embedding models; call it with POST /v1/embeddings" in info.value.message
