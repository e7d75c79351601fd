"""OpenTelemetry traces, end to end: Turnout exports over OTLP/HTTP to an in-process receiver that decodes the
protobuf. A client request with a W3C traceparent becomes a SERVER span in the client's trace, with one CLIENT
span per upstream attempt (GenAI semantic conventions: names, gen_ai.* attributes, error.type on the failed
attempt), and the attempt's traceparent reaches the provider. Probes and webhook deliveries get spans too.
Tracing off: no span, no traceparent, no SDK object."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from controlplane import tracing
from tests.chaos.conftest import OA, OB, Stack, build_stack, teardown_stack
from tests.support import serve_app
from tests.tracing.otlp_receiver import OtlpReceiver

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


class RecordingProxy:
    """Stands between Turnout and the simulator, keeping the headers of every request (traceparent included)."""

    def __init__(self) -> None:
        self.upstream: dict[str, str] = {}  # provider id -> the simulator's base URL
        self.seen: list[tuple[str, str, dict[str, str]]] = []  # (provider, path, headers)
        self.port = 0
        self._runner: Any = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> RecordingProxy:
        app = web.Application()
        app.router.add_route("*", "/{provider}/{tail:.*}", self._forward)
        self._runner, self.port = await serve_app(app)
        self._http = aiohttp.ClientSession(auto_decompress=False)
        return self

    async def stop(self) -> None:
        assert self._http is not None
        await self._http.close()
        await self._runner.cleanup()

    def route(self, raw: dict[str, Any]) -> None:
        for p in raw["providers"]:
            self.upstream[p["id"]] = p["base_url"]
            p["base_url"] = f"http://127.0.0.1:{self.port}/{p['id']}"

    async def _forward(self, request: web.Request) -> web.Response:
        pid, tail = request.match_info["provider"], request.match_info["tail"]
        self.seen.append((pid, tail, dict(request.headers)))
        url = f"{self.upstream[pid]}/{tail}" + (f"?{request.query_string}" if request.query_string else "")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        assert self._http is not None
        async with self._http.request(request.method, url, headers=headers, data=await request.read()) as r:
            body = await r.read()
            keep = {k: v for k, v in r.headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
            return web.Response(status=r.status, body=body, headers=keep)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    yield monkeypatch
    tracing.shutdown_tracing()


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    r = await OtlpReceiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def traced(
    env: pytest.MonkeyPatch, receiver: OtlpReceiver, tmp_path: Path
) -> AsyncIterator[tuple[Stack, RecordingProxy]]:
    env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    env.setenv("OTEL_SERVICE_NAME", "turnout-test")
    assert tracing.setup_tracing()
    proxy = await RecordingProxy().start()

    def mutate(raw: dict[str, Any]) -> None:
        proxy.route(raw)
        raw["providers"][0]["models"][0]["priority"] = 5  # oa/gpt-x first on route pair

    stack = await build_stack(tmp_path, mutate)
    yield stack, proxy
    await teardown_stack(stack)
    await proxy.stop()


async def _flush() -> None:
    """Export what is buffered (the receiver runs on this loop, so the exporter's blocking POST needs a thread)."""
    await asyncio.to_thread(tracing.shutdown_tracing)


async def test_a_request_with_failover_is_one_trace_continued_from_the_client(
    traced: tuple[Stack, RecordingProxy], receiver: OtlpReceiver
) -> None:
    stack, proxy = traced
    await stack.step(10, by=5)
    assert stack.table().routes["pair"].primary.target == OA
    stack.sim.set_fault("oa", "overloaded")
    proxy.seen.clear()
    status, headers, body = await stack.chat("pair", headers={"traceparent": TRACEPARENT})
    assert status == 200 and headers["x-turnout-target"] == OB, body
    await _flush()

    [req] = receiver.named("chat pair")
    assert req.kind == "SERVER" and req.trace_id == CLIENT_TRACE and req.parent_id == CLIENT_SPAN
    a = req.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "pair"
    assert a["turnout.route"] == "pair" and a["turnout.table_version"] == int(headers["x-turnout-table-version"])
    assert a["turnout.attempt"] == 2 and a["turnout.target"] == OB
    assert a["gen_ai.response.model"] == "gpt-x" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.usage.input_tokens"] == body["usage"]["prompt_tokens"] > 0
    assert a["gen_ai.usage.output_tokens"] == body["usage"]["completion_tokens"] > 0
    assert a["http.response.status_code"] == 200 and not req.error
    assert req.resource["service.name"] == "turnout-test" and req.resource["service.version"]

    attempts = sorted(
        (s for s in receiver.named("chat gpt-x") if s.parent_id == req.span_id),
        key=lambda s: s.attributes["turnout.attempt"],
    )
    assert [(s.kind, s.attributes["turnout.target"], s.attributes["turnout.attempt"]) for s in attempts] == [
        ("CLIENT", OA, 1),
        ("CLIENT", OB, 2),
    ]
    failed, ok = attempts
    assert failed.error and failed.attributes["error.type"] == "overloaded"
    assert not ok.error and "error.type" not in ok.attributes
    for s in attempts:
        assert s.trace_id == CLIENT_TRACE
        assert s.attributes["gen_ai.operation.name"] == "chat" and s.attributes["gen_ai.request.model"] == "gpt-x"
        assert s.attributes["gen_ai.provider.name"] == "openai" and s.attributes["server.address"] == "127.0.0.1"
    assert ok.attributes["gen_ai.response.model"] == "gpt-x"
    assert ok.attributes["gen_ai.usage.output_tokens"] == body["usage"]["completion_tokens"]

    # each upstream call carried its own attempt span as the parent, in the client's trace
    sent = {pid: h.get("traceparent") for pid, path, h in proxy.seen if path.endswith("chat/completions")}
    assert sent == {
        "oa": f"00-{CLIENT_TRACE}-{failed.span_id}-01",
        "ob": f"00-{CLIENT_TRACE}-{ok.span_id}-01",
    }
    assert receiver.content_types == {"application/x-protobuf"}  # OTLP/HTTP, protobuf encoding


async def test_an_exhausted_request_and_a_stream_are_traced(
    traced: tuple[Stack, RecordingProxy], receiver: OtlpReceiver
) -> None:
    stack, _ = traced
    await stack.step(10, by=5)
    stack.sim.set_fault("oa", "overloaded")
    stack.sim.set_fault("ob", "overloaded")
    status, _, _ = await stack.chat("pair")
    assert status == 503
    stack.sim.clear_faults()
    status, _, text = await stack.chat("pair", stream=True)
    assert status == 200 and "[DONE]" in text
    await _flush()
    exhausted, streamed = receiver.named("chat pair")
    assert exhausted.error and exhausted.attributes["error.type"] == "exhausted"
    assert exhausted.attributes["http.response.status_code"] == 503 and exhausted.parent_id == ""  # a new trace
    assert streamed.attributes["turnout.stream"] is True and not streamed.error
    [attempt] = [s for s in receiver.spans if s.parent_id == streamed.span_id]
    assert (
        attempt.attributes["gen_ai.response.model"] == "gpt-x" and attempt.attributes["gen_ai.usage.output_tokens"] > 0
    )


async def test_probes_and_webhook_deliveries_have_spans(
    traced: tuple[Stack, RecordingProxy], receiver: OtlpReceiver
) -> None:
    stack, _ = traced
    await stack.step(10, by=5)
    stack.sim.set_fault("oa", "OA-403R")  # region_blocked: a withdrawal event, delivered to the webhook receiver
    await stack.step(30, by=5)
    assert stack.state(OA) == "withdrawn"
    await stack.delivered({"target.withdrawn"})
    await _flush()
    probes = [s for s in receiver.spans if s.name.startswith("probe ")]
    kinds = {s.attributes["turnout.probe.kind"] for s in probes}
    assert {"catalogue", "completion"} <= kinds
    assert all(s.kind == "CLIENT" and s.attributes["turnout.target"] for s in probes)
    blocked = [s for s in probes if s.attributes["turnout.target"] == OA and s.error]
    assert blocked and blocked[-1].attributes["error.type"] == "region_blocked"
    deliveries = receiver.named("webhook deliver")
    assert deliveries and all(s.kind == "CLIENT" and not s.error for s in deliveries)
    assert deliveries[0].attributes["http.response.status_code"] == 200
    assert stack.receiver.url.split("/")[2] in deliveries[0].attributes["server.address"]


async def test_off_means_no_span_and_no_traceparent(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert not tracing.setup_tracing() and tracing.tracer() is None
    proxy = await RecordingProxy().start()
    stack = await build_stack(tmp_path, proxy.route)
    try:
        status, _, _ = await stack.chat("pair", headers={"traceparent": TRACEPARENT})
        assert status == 200
        assert proxy.seen and all("traceparent" not in h for _, _, h in proxy.seen)
    finally:
        await teardown_stack(stack)
        await proxy.stop()


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, False),
    ],
)
def test_which_variables_turn_tracing_on(env: dict[str, str], on: bool) -> None:
    assert tracing.enabled_by(env) is on
