"""openai's `AzureOpenAI`, pointed at the simulator's Azure flavor, speaks the deployments surface (path +
api-version, `api-key`), and the plain client speaks the v1 surface; Azure's errors arrive as the SDK's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from adapters.sim import Simulator
from tests.fakes import FakeClock

pytestmark = pytest.mark.integration

KEY = "azure-sim-key"
SIM: dict[str, Any] = {
    "providers": [
        {"id": "az", "family": "openai", "flavor": "azure", "api_key": KEY, "models": [{"name": "gpt-4o-eu"}]}
    ]
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator.from_yaml(SIM, clock=FakeClock()) as s:
        yield s


@pytest.fixture
async def az(sim: Simulator) -> AsyncIterator[openai.AsyncAzureOpenAI]:
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=sim.root_url("az"), api_key=KEY, api_version="2024-10-21", max_retries=0
    )
    async with client:
        yield client


async def test_deployment_surface_answers_json_and_stream(az: openai.AsyncAzureOpenAI, sim: Simulator) -> None:
    msg: Any = [{"role": "user", "content": "hi"}]
    resp = await az.chat.completions.create(model="gpt-4o-eu", messages=msg)
    assert resp.choices[0].message.content == "Hello from az/gpt-4o-eu"
    stream = await az.chat.completions.create(
        model="gpt-4o-eu", messages=msg, stream=True, stream_options={"include_usage": True}
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello from az/gpt-4o-eu"
    assert sim.requests("az", "gpt-4o-eu", "chat_completions") == 2


async def test_v1_surface_takes_the_deployment_in_the_body(sim: Simulator) -> None:
    async with openai.AsyncOpenAI(base_url=f"{sim.root_url('az')}/openai/v1", api_key=KEY, max_retries=0) as c:
        resp = await c.chat.completions.create(model="gpt-4o-eu", messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == "Hello from az/gpt-4o-eu"


async def test_throttle_and_missing_deployment_and_filter_arrive_as_sdk_errors(
    az: openai.AsyncAzureOpenAI, sim: Simulator
) -> None:
    msg: Any = [{"role": "user", "content": "hi"}]
    sim.set_fault("az", "rate_limited", count=1)
    with pytest.raises(openai.RateLimitError) as throttled:
        await az.chat.completions.create(model="gpt-4o-eu", messages=msg)
    assert throttled.value.response.headers["retry-after-ms"] == "6000"
    with pytest.raises(openai.NotFoundError) as gone:
        await az.chat.completions.create(model="no-such-deployment", messages=msg)
    assert gone.value.code == "DeploymentNotFound"
    sim.set_fault("az", "AZ-CF", count=1)
    with pytest.raises(openai.BadRequestError) as filtered:
        await az.chat.completions.create(model="gpt-4o-eu", messages=msg)
    assert filtered.value.code == "content_filter"


async def test_wrong_key_is_refused(sim: Simulator) -> None:
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=sim.root_url("az"), api_key="wrong", api_version="2024-10-21", max_retries=0
    )
    async with client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="gpt-4o-eu", messages=[{"role": "user", "content": "hi"}])
