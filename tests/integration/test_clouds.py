"""A route over the three region-pinned clouds, through Turnout, against the simulator: Bedrock (SigV4 checked),
Vertex (service-account tokens from the simulator's token endpoint, Gemini and Anthropic publishers) and Azure
(deployments, api-key). Each answers chat (JSON and stream) through the data plane; each cloud's throttling,
access-denied, unsupported-region and model-gone answers get the right class, the request fails over to the next
cloud, and the breaker ends in the right state; a bad signature and an expired token are `auth`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from adapters.registry import get_adapter
from adapters.sim import Simulator
from adapters.sim.config import SIM_AWS_ACCESS_KEY_ID
from controlplane.config_loader import parse_config
from controlplane.control_plane import ControlPlane
from controlplane.domain import ErrorClass, State
from dataplane.proxy import build_data_app
from tests.fakes import FakeClock
from tests.support import serve_app

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]

SECRET = "sim-aws-secret"
AZ_KEY = "sim-azure-key"
BR_MODEL = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
VX_CLAUDE = "claude-sonnet-4-5@20250929"
VX_GEMINI = "gemini-2.5-flash"
AZ_MODEL = "gpt-4o-eu"
TARGETS = {"br": f"br/{BR_MODEL}", "vx": f"vx/{VX_CLAUDE}", "vg": f"vx/{VX_GEMINI}", "az": f"az/{AZ_MODEL}"}
MSG: Any = [{"role": "user", "content": "Say hello"}]

SIM: dict[str, Any] = {
    "providers": [
        {"id": "br", "family": "bedrock", "api_key": SECRET, "region": "eu-central-1", "models": [{"name": BR_MODEL}]},
        {
            "id": "vx",
            "family": "vertex",
            "region": "europe-west4",
            "project": "eu-proj",
            "token_lifetime": "1h",
            "models": [{"name": VX_CLAUDE}, {"name": VX_GEMINI}],
        },
        {"id": "az", "family": "openai", "flavor": "azure", "api_key": AZ_KEY, "models": [{"name": AZ_MODEL}]},
    ]
}


@dataclass
class Env:
    sim: Simulator
    sim_clock: FakeClock
    rt: ControlPlane
    clock: FakeClock
    client: openai.AsyncOpenAI

    def state(self, key: str) -> State:
        return self.rt.table_source.current().targets[TARGETS[key]].state

    def live(self, key: str) -> ErrorClass:
        return self.rt.store.latest_observations(TARGETS[key])["live"].error_class


def _config(sim: Simulator, tmp: Path, secret: str = SECRET) -> str:
    sa = tmp / "vertex-sa.json"
    sa.write_text(json.dumps(sim.service_account_info("vx")))
    root = {p: sim.root_url(p) for p in ("br", "vx", "az")}
    cfg = {
        "database": {"url": f"sqlite:///{tmp / 't.db'}"},
        "providers": [
            {
                "id": "br",
                "adapter": "bedrock",
                "region": "eu-central-1",
                "jurisdiction": "eu",
                "base_url": root["br"],
                "catalogue_url": root["br"],
                "aws_access_key_id": SIM_AWS_ACCESS_KEY_ID,
                "aws_secret_access_key": secret,
                "models": [{"name": BR_MODEL}],
            },
            {
                "id": "vx",
                "adapter": "vertex",
                "region": "europe-west4",
                "project": "eu-proj",
                "jurisdiction": "eu",
                "base_url": f"{root['vx']}/v1",
                "credentials_file": str(sa),
                "models": [{"name": VX_CLAUDE}, {"name": VX_GEMINI}],
            },
            {
                "id": "az",
                "adapter": "azure",
                "region": "swedencentral",
                "jurisdiction": "eu",
                "base_url": root["az"],
                "api_key": AZ_KEY,
                "models": [{"name": AZ_MODEL}],
            },
        ],
        "routes": [
            {"name": "eu", "targets": [TARGETS["br"], TARGETS["vx"], TARGETS["az"]]},
            {"name": "eu-vertex-first", "targets": [TARGETS["vx"], TARGETS["az"], TARGETS["br"]]},
            {"name": "eu-azure-first", "targets": [TARGETS["az"], TARGETS["br"], TARGETS["vx"]]},
            *({"name": f"only-{k}", "targets": [t]} for k, t in TARGETS.items()),
        ],
        "dataplane": {
            "first_byte_timeout": "2s",
            "stall_timeout": "2s",
            "total_timeout": "10s",
            "connect_timeout": "1s",
        },
    }
    return json.dumps(cfg)


@pytest.fixture
async def sim_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sim(sim_clock: FakeClock) -> AsyncIterator[Simulator]:
    async with Simulator.from_yaml(SIM, clock=sim_clock, admin=False) as s:
        yield s


async def _env(sim: Simulator, sim_clock: FakeClock, tmp: Path, **kw: Any) -> AsyncIterator[Env]:
    clock = FakeClock()
    rt = ControlPlane(
        parse_config(_config(sim, tmp, **kw), env={}), clock=clock, probes=False, webhooks=False, fire=False
    )
    await rt.start()
    runner, port = await serve_app(build_data_app(rt))
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0, timeout=20)
    try:
        yield Env(sim, sim_clock, rt, clock, client)
    finally:
        await client.close()
        await runner.cleanup()
        await rt.stop()


@pytest.fixture
async def env(sim: Simulator, sim_clock: FakeClock, tmp_path: Path) -> AsyncIterator[Env]:
    async for e in _env(sim, sim_clock, tmp_path):
        yield e


async def _ask(env: Env, route: str, *, stream: bool = False) -> tuple[str, str]:
    """(target that answered, text) for one chat request through Turnout."""
    if not stream:
        raw = await env.client.chat.completions.with_raw_response.create(model=route, messages=MSG)
        return raw.headers["x-turnout-target"], raw.parse().choices[0].message.content or ""
    raw_s = await env.client.chat.completions.with_raw_response.create(
        model=route, messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    text = ""
    async for chunk in raw_s.parse():
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    return raw_s.headers["x-turnout-target"], text


@pytest.mark.parametrize("key", ["br", "vx", "vg", "az"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_each_cloud_answers_through_turnout(env: Env, key: str, stream: bool) -> None:
    target, text = await _ask(env, f"only-{key}", stream=stream)
    provider, model = TARGETS[key].split("/", 1)
    assert target == TARGETS[key]
    assert text == f"Hello from {provider}/{model}"


FAULTS = [
    # (route whose first target is the faulty cloud, its key, the fault, class, breaker state afterwards)
    ("eu", "br", "rate_limited", ErrorClass.RATE_LIMITED, State.CLOSED),
    ("eu", "br", "BR-403", ErrorClass.AUTH, State.WITHDRAWN),
    ("eu", "br", "region_blocked", ErrorClass.REGION_BLOCKED, State.WITHDRAWN),
    ("eu", "br", "model_gone", ErrorClass.MODEL_GONE, State.WITHDRAWN),
    ("eu-vertex-first", "vx", "rate_limited", ErrorClass.RATE_LIMITED, State.CLOSED),
    ("eu-vertex-first", "vx", "VX-403", ErrorClass.AUTH, State.WITHDRAWN),
    ("eu-vertex-first", "vx", "region_blocked", ErrorClass.REGION_BLOCKED, State.WITHDRAWN),
    ("eu-vertex-first", "vx", "model_gone", ErrorClass.MODEL_GONE, State.WITHDRAWN),
    ("eu-vertex-first", "vx", "AN-529", ErrorClass.OVERLOADED, State.CLOSED),  # a model error, Anthropic's shape
    ("eu-azure-first", "az", "rate_limited", ErrorClass.RATE_LIMITED, State.CLOSED),
    ("eu-azure-first", "az", "auth", ErrorClass.AUTH, State.WITHDRAWN),
    ("eu-azure-first", "az", "region_blocked", ErrorClass.REGION_BLOCKED, State.WITHDRAWN),
]


@pytest.mark.parametrize(
    ("route", "key", "fault", "cls", "state"), FAULTS, ids=[f"{k}-{f}" for _, k, f, _, _ in FAULTS]
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_cloud_errors_are_classified_fail_over_and_set_the_breaker(
    env: Env, route: str, key: str, fault: str, cls: ErrorClass, state: State, stream: bool
) -> None:
    provider, model = TARGETS[key].split("/", 1)
    env.sim.set_fault(provider, fault, model=model)
    tried = env.sim.requests(provider)
    target, text = await _ask(env, route, stream=stream)
    assert target != TARGETS[key] and text.startswith("Hello from ")  # the client never saw the failure
    assert env.sim.requests(provider) > tried  # the faulty cloud was asked first
    await env.rt.sink.flush()
    assert env.live(key) is cls
    assert env.state(key) is state


async def test_azure_deployment_not_found_is_a_failure_within_the_grace_then_withdraws(env: Env) -> None:
    env.sim.set_fault("az", "model_gone")
    target, _ = await _ask(env, "eu-azure-first")
    await env.rt.sink.flush()
    assert target != TARGETS["az"] and env.live("az") is ErrorClass.MODEL_GONE
    assert env.state("az") is not State.WITHDRAWN  # maybe created minutes ago: not withdrawn yet
    env.clock.advance(301)
    await _ask(env, "eu-azure-first")
    await env.rt.sink.flush()
    assert env.state("az") is State.WITHDRAWN


async def test_bad_signature_is_auth_and_withdraws_the_credential(
    sim: Simulator, sim_clock: FakeClock, tmp_path: Path
) -> None:
    async for env in _env(sim, sim_clock, tmp_path, secret="not-the-secret"):
        target, _ = await _ask(env, "eu")
        await env.rt.sink.flush()
        assert target != TARGETS["br"]
        obs = env.rt.store.latest_observations(TARGETS["br"])["live"]
        assert obs.error_class is ErrorClass.AUTH and obs.code == "InvalidSignatureException"
        assert env.state("br") is State.WITHDRAWN


async def test_expired_vertex_token_is_auth(env: Env) -> None:
    assert (await _ask(env, "only-vx"))[0] == TARGETS["vx"]  # a token was fetched and used
    env.sim_clock.advance(3601)  # the simulator's token lifetime is over; Turnout's copy still looks fresh
    target, _ = await _ask(env, "eu-vertex-first")
    await env.rt.sink.flush()
    assert target != TARGETS["vx"]
    assert env.live("vx") is ErrorClass.AUTH
    assert env.state("vx") is State.WITHDRAWN
    fetched = env.sim.requests("vx", None, "token")
    provider = env.rt.config.provider("vx")
    assert provider is not None
    await get_adapter("vertex").prepare(provider)  # type: ignore[attr-defined]  # the recheck's first step
    assert env.sim.requests("vx", None, "token") == fetched + 1  # the refused token was dropped, a new one fetched


async def test_probes_over_the_clouds_and_bedrock_availability_sees_a_region_block(
    sim: Simulator, sim_clock: FakeClock, tmp_path: Path
) -> None:
    raw = json.loads(_config(sim, tmp_path))
    raw["probes"] = {
        "interval": "10s",
        "jitter": 0,
        "timeout": "5s",
        "kinds": {
            "catalogue": {"interval": "10s"},
            "completion": {"interval": "10s"},
            "count_tokens": {"interval": "10s"},
        },
    }
    clock = FakeClock()
    rt = ControlPlane(parse_config(json.dumps(raw), env={}), clock=clock, webhooks=False, fire=False)
    await rt.start()
    try:
        for _ in range(12):
            await rt.scheduler.run_due()
            clock.advance(1)
        await rt.sink.flush()
        for key, kinds in {
            "br": {"catalogue", "completion", "count_tokens"},
            "vx": {"completion", "count_tokens"},
            "vg": {"completion", "count_tokens"},
            "az": {"completion"},
        }.items():
            latest = rt.store.latest_observations(TARGETS[key])
            assert kinds <= set(latest) and all(latest[k].ok for k in kinds), (key, latest)
            assert "catalogue" in latest or key != "br"
        assert "catalogue" not in rt.store.latest_observations(TARGETS["az"])  # Azure lists models, not deployments
        assert sim.requests("br", None, "model_availability") >= 1

        sim.set_fault("br", "region_blocked")
        for _ in range(12):
            await rt.scheduler.run_due()
            clock.advance(1)
        await rt.sink.flush()
        assert rt.table_source.current().targets[TARGETS["br"]].state is State.WITHDRAWN
        clock.advance(900)  # the withdrawn target's recheck is due: the availability call answers it
        for _ in range(12):
            await rt.scheduler.run_due()
            clock.advance(1)
        await rt.sink.flush()
        latest = rt.store.latest_observations(TARGETS["br"])
        assert latest["catalogue"].error_class is ErrorClass.REGION_BLOCKED  # availability: NOT_AVAILABLE here
        assert latest["catalogue"].code == "region_not_available"
        assert rt.table_source.current().targets[TARGETS["br"]].state is State.WITHDRAWN
    finally:
        await rt.stop()
