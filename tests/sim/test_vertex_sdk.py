"""The official Vertex clients, pointed at the simulator: google-genai with Vertex settings and a base URL
(service-account credentials through the simulator's token endpoint), and anthropic's AnthropicVertex
(rawPredict / streamRawPredict with anthropic_version). Expired or foreign tokens are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from google.oauth2 import service_account

from adapters.google_auth import SCOPE
from adapters.sim import Simulator
from tests.fakes import FakeClock

pytestmark = [
    pytest.mark.integration,
    # google-genai's async client subclasses aiohttp's ClientSession (its own choice; aiohttp warns about it)
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]

SIM: dict[str, Any] = {
    "providers": [
        {
            "id": "vx",
            "family": "vertex",
            "region": "europe-west4",
            "project": "eu-proj",
            "token_lifetime": "1h",
            "models": [{"name": "gemini-2.5-flash"}, {"name": "claude-sonnet-4-5@20250929"}],
        }
    ]
}


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[Simulator]:
    async with Simulator.from_yaml(SIM, clock=clock) as s:
        yield s


def _credentials(info: dict[str, Any]) -> service_account.Credentials:
    load = service_account.Credentials.from_service_account_info
    return load(info, scopes=[SCOPE])  # type: ignore[no-untyped-call,no-any-return]


def _genai(sim: Simulator) -> genai.Client:
    creds = _credentials(sim.service_account_info("vx"))
    return genai.Client(
        vertexai=True,
        project="eu-proj",
        location="europe-west4",
        credentials=creds,
        http_options=types.HttpOptions(base_url=sim.root_url("vx"), api_version="v1"),
    )


async def test_google_genai_on_vertex_generates_and_streams(sim: Simulator) -> None:
    client = _genai(sim)
    resp = await client.aio.models.generate_content(model="gemini-2.5-flash", contents="Say hello")
    assert resp.text == "Hello from vx/gemini-2.5-flash"
    text = ""
    async for chunk in await client.aio.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"):
        text += chunk.text or ""
    assert text == "Hello from vx/gemini-2.5-flash"
    count = await client.aio.models.count_tokens(model="gemini-2.5-flash", contents="Say hello")
    assert count.total_tokens == 3
    assert sim.requests("vx", None, "token") == 1  # one token, reused


async def test_anthropic_vertex_raw_predict_and_stream(sim: Simulator) -> None:
    client = anthropic.AsyncAnthropicVertex(
        region="europe-west4",
        project_id="eu-proj",
        access_token=sim.access_token("vx"),
        base_url=f"{sim.root_url('vx')}/v1",
        max_retries=0,
    )
    msg = await client.messages.create(
        model="claude-sonnet-4-5@20250929", max_tokens=32, messages=[{"role": "user", "content": "Say hello"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "Hello from vx/claude-sonnet-4-5@20250929"
    async with client.messages.stream(
        model="claude-sonnet-4-5@20250929", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text == "Hello from vx/claude-sonnet-4-5@20250929"
    sim.set_fault("vx", "AN-529", count=1)  # a model error, in Anthropic's shape
    with pytest.raises(anthropic.APIStatusError) as err:
        await client.messages.create(
            model="claude-sonnet-4-5@20250929", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.status_code == 529


async def test_expired_and_unknown_tokens_are_unauthenticated(sim: Simulator, clock: FakeClock) -> None:
    token = sim.access_token("vx")
    client = anthropic.AsyncAnthropicVertex(
        region="europe-west4",
        project_id="eu-proj",
        access_token=token,
        base_url=f"{sim.root_url('vx')}/v1",
        max_retries=0,
    )
    clock.advance(3601)
    with pytest.raises(anthropic.AuthenticationError):
        await client.messages.create(
            model="claude-sonnet-4-5@20250929", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    gclient = genai.Client(
        vertexai=True,
        project="eu-proj",
        location="europe-west4",
        credentials=_credentials(
            {**sim.service_account_info("vx"), "client_email": "someone@else.iam.gserviceaccount.com"}
        ),
        http_options=types.HttpOptions(base_url=sim.root_url("vx"), api_version="v1"),
    )
    with pytest.raises(Exception) as refused:  # google-auth's RefreshError: the token endpoint said invalid_grant
        await gclient.aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert "invalid_grant" in str(refused.value) or isinstance(refused.value, genai_errors.ClientError)
