"""Every Bedrock (BR-*) and Vertex (VX-*) row of the fault catalogue, sent by Turnout's own adapter (SigV4
signed; a bearer token from the simulator's token endpoint) and classified by it as the row says (§6)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.bedrock import BedrockAdapter
from adapters.calls import wire_url
from adapters.sim import FAULTS, Simulator
from adapters.sim.catalogue import Behaviour
from adapters.sim.config import SIM_AWS_ACCESS_KEY_ID
from adapters.vertex import VertexAdapter
from controlplane.config import ProviderConfig
from tests.fakes import FakeClock

pytestmark = pytest.mark.integration

BR_MODEL = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
SIM: dict[str, Any] = {
    "providers": [
        {
            "id": "br",
            "family": "bedrock",
            "api_key": "s3cret",
            "region": "eu-central-1",
            "models": [{"name": BR_MODEL}],
        },
        {"id": "vx", "family": "vertex", "region": "europe-west4", "models": [{"name": "gemini-2.5-flash"}]},
    ]
}
ROWS = sorted(fid for fid in FAULTS if fid.startswith(("BR-", "VX-")))
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator.from_yaml(SIM, clock=FakeClock(), admin=False) as s:
        yield s


def _providers(sim: Simulator, tmp: Path) -> dict[str, ProviderConfig]:
    sa = tmp / "sa.json"
    sa.write_text(json.dumps(sim.service_account_info("vx")))
    br = {
        "id": "br",
        "adapter": "bedrock",
        "region": "eu-central-1",
        "base_url": sim.root_url("br"),
        "aws_access_key_id": SIM_AWS_ACCESS_KEY_ID,
        "aws_secret_access_key": "s3cret",
        "models": [{"name": BR_MODEL}],
    }
    vx = {
        "id": "vx",
        "adapter": "vertex",
        "region": "europe-west4",
        "project": "sim-project",
        "base_url": sim.base_url("vx"),
        "credentials_file": str(sa),
        "models": [{"name": "gemini-2.5-flash"}],
    }
    return {"br": ProviderConfig.model_validate(br), "vx": ProviderConfig.model_validate(vx)}


@pytest.mark.parametrize("fault", ROWS)
async def test_cloud_rows_answer_and_classify_as_documented(sim: Simulator, tmp_path: Path, fault: str) -> None:
    spec = FAULTS[fault]
    key = "br" if fault.startswith("BR-") else "vx"
    adapter: BedrockAdapter | VertexAdapter = BedrockAdapter() if key == "br" else VertexAdapter()
    provider = _providers(sim, tmp_path)[key]
    model = provider.models[0].name
    stream = spec.behaviour is Behaviour.MID_ERROR
    await adapter.prepare(provider)
    sim.set_fault(key, fault, count=1)
    req = adapter.build_request(provider, model, BODY, stream=stream)
    async with aiohttp.ClientSession() as http:
        async with http.post(wire_url(req.url), headers=req.headers, data=req.body) as resp:
            status, headers, body = resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()
    if stream:
        assert status == 200
        tr = adapter.stream_translator(model=model)
        errors = [i.classification for i in tr.feed(body) + tr.close() if i.kind == "error"]
        assert errors and errors[0] is not None and errors[0].error_class is spec.expected, errors
    else:
        assert spec.render is not None and status >= 400
        c = adapter.classify(status, headers, body)
        assert c.error_class is spec.expected, (fault, c)
        if key == "br":
            assert "x-amzn-errortype" in headers and set(json.loads(body)) == {"message"}
    assert sim.stats()["providers"][key]["faults"] == {fault: 1}
