"""boto3's `bedrock-runtime` and `bedrock` clients, pointed at the simulator with `endpoint_url`, sign their
requests (SigV4, checked by the simulator with botocore) and parse its answers: Converse, ConverseStream's
binary event stream, count-tokens, the catalogue and availability, and errors by `x-amzn-ErrorType`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, EventStreamError

from adapters.sim import Simulator
from adapters.sim.config import SIM_AWS_ACCESS_KEY_ID
from tests.fakes import FakeClock

pytestmark = pytest.mark.integration

SECRET = "sim-secret-access-key"
REGION = "eu-central-1"
PROFILE = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
SIM: dict[str, Any] = {
    "providers": [
        {
            "id": "br",
            "family": "bedrock",
            "api_key": SECRET,
            "region": REGION,
            "models": [{"name": PROFILE}, {"name": "amazon.nova-lite-v1:0"}],
        }
    ]
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator.from_yaml(SIM, clock=FakeClock()) as s:
        yield s


def _client(sim: Simulator, service: str = "bedrock-runtime", secret: str = SECRET, region: str = REGION) -> Any:
    return boto3.client(
        service,
        endpoint_url=sim.root_url("br"),
        region_name=region,
        aws_access_key_id=SIM_AWS_ACCESS_KEY_ID,
        aws_secret_access_key=secret,
        config=BotoConfig(retries={"max_attempts": 1, "mode": "standard"}),
    )


def _converse(client: Any, **kw: Any) -> Any:
    return client.converse(modelId=PROFILE, messages=[{"role": "user", "content": [{"text": "Say hello"}]}], **kw)


async def test_converse_is_signed_and_parsed(sim: Simulator) -> None:
    resp = await asyncio.to_thread(_converse, _client(sim), inferenceConfig={"maxTokens": 32})
    assert resp["output"]["message"]["content"][0]["text"] == f"Hello from br/{PROFILE}"
    assert resp["stopReason"] == "end_turn"
    assert resp["usage"]["outputTokens"] == 3
    # the model id's ':' went percent-encoded in the path, and the signature covered that form
    assert sim.requests("br", PROFILE, "converse") == 1


async def test_converse_stream_event_stream_is_decoded_by_boto3(sim: Simulator) -> None:
    def run() -> list[dict[str, Any]]:
        resp = _client(sim).converse_stream(modelId=PROFILE, messages=[{"role": "user", "content": [{"text": "hi"}]}])
        return list(resp["stream"])

    events = await asyncio.to_thread(run)
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == f"Hello from br/{PROFILE}"
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 3


async def test_mid_stream_exception_reaches_boto3_as_its_exception(sim: Simulator) -> None:
    sim.set_fault("br", "mid_stream_error")

    def run() -> str:
        resp = _client(sim).converse_stream(modelId=PROFILE, messages=[{"role": "user", "content": [{"text": "hi"}]}])
        try:
            list(resp["stream"])
        except EventStreamError as exc:
            return str(exc.response["Error"]["Code"])
        return "no error"

    assert await asyncio.to_thread(run) == "modelStreamErrorException"


async def test_wrong_secret_is_refused_with_invalid_signature(sim: Simulator) -> None:
    with pytest.raises(ClientError) as err:
        await asyncio.to_thread(_converse, _client(sim, secret="not-the-secret"))
    assert err.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


async def test_signature_for_another_region_is_refused(sim: Simulator) -> None:
    with pytest.raises(ClientError) as err:
        await asyncio.to_thread(_converse, _client(sim, region="us-east-1"))
    assert err.value.response["Error"]["Code"] == "InvalidSignatureException"


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("rate_limited", "ThrottlingException", 429),
        ("overloaded", "ServiceUnavailableException", 503),
        ("region_blocked", "ValidationException", 400),
        ("model_gone", "ValidationException", 400),
        ("BR-403", "AccessDeniedException", 403),
    ],
)
async def test_errors_come_as_boto3_exceptions_by_name(sim: Simulator, fault: str, code: str, status: int) -> None:
    sim.set_fault("br", fault)
    with pytest.raises(ClientError) as err:
        await asyncio.to_thread(_converse, _client(sim))
    assert err.value.response["Error"]["Code"] == code
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


async def test_count_tokens_answers_input_tokens(sim: Simulator) -> None:
    def run() -> Any:
        return _client(sim).count_tokens(
            modelId=PROFILE, input={"converse": {"messages": [{"role": "user", "content": [{"text": "Say hello"}]}]}}
        )

    assert (await asyncio.to_thread(run))["inputTokens"] == 3


async def test_catalogue_lists_base_ids_and_profiles_apart(sim: Simulator) -> None:
    control = _client(sim, "bedrock")
    base = await asyncio.to_thread(control.list_foundation_models)
    profiles = await asyncio.to_thread(control.list_inference_profiles)
    assert {m["modelId"] for m in base["modelSummaries"]} == {
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "amazon.nova-lite-v1:0",
    }
    assert [p["inferenceProfileId"] for p in profiles["inferenceProfileSummaries"]] == [PROFILE]


async def test_availability_reports_a_region_block(sim: Simulator) -> None:
    control = _client(sim, "bedrock")
    model = "anthropic.claude-sonnet-4-5-20250929-v1:0"
    before = await asyncio.to_thread(control.get_foundation_model_availability, modelId=model)
    sim.set_fault("br", "region_blocked")
    after = await asyncio.to_thread(control.get_foundation_model_availability, modelId=model)
    assert (before["regionAvailability"], after["regionAvailability"]) == ("AVAILABLE", "NOT_AVAILABLE")
    assert after["authorizationStatus"] == "AUTHORIZED"
