"""The probe calls over real HTTP on loopback: listings with pagination, streamed probe completions,
and transport faults (refused, hang, oversized, cut off) coming back classified."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
import pytest
from aiohttp import web

from adapters import calls
from adapters.base import UpstreamRequest
from adapters.registry import get_adapter
from controlplane.domain import ErrorClass as E
from controlplane.domain import Scope
from controlplane.errors import ProviderError
from tests.adapters.conftest import provider
from tests.support import free_port

pytestmark = pytest.mark.integration

Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for r in runners:
        await r.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def app_with(routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]) -> web.Application:
    app = web.Application()
    for spec, handler in routes.items():
        method, path = spec.split(" ", 1)
        app.router.add_route(method, path, handler)
    return app


async def sse(request: web.Request, events: list[bytes], headers: dict[str, str] | None = None) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream", **(headers or {})})
    await resp.prepare(request)
    for e in events:
        await resp.write(e)
    await resp.write_eof()
    return resp


def oa_chunk(delta: dict[str, object], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    doc: dict[str, object] = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else [],
    }
    if usage:
        doc["usage"] = usage
    return b"data: " + orjson.dumps(doc) + b"\n\n"


async def test_openai_listing_and_auth_failure(serve: Serve, session: aiohttp.ClientSession) -> None:
    seen: list[str | None] = []

    async def models(request: web.Request) -> web.Response:
        seen.append(request.headers.get("authorization"))
        if request.headers.get("authorization") != "Bearer sk-test-secret-key-123456":
            return web.json_response(
                {"error": {"message": "Incorrect API key", "type": "invalid_request_error", "code": "invalid_api_key"}},
                status=401,
            )
        return web.json_response(
            {"object": "list", "data": [{"id": "gpt-4o", "object": "model"}, {"id": "gpt-4o-mini", "object": "model"}]},
            headers={"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "50"},
        )

    base = await serve(app_with({"GET /v1/models": models}))
    listing = await get_adapter("openai").list_models(session, provider("openai", f"{base}/v1"), timeout=5)
    assert listing.models == ["gpt-4o", "gpt-4o-mini"]
    assert listing.headroom is not None and listing.headroom.ratio == 0.5
    with pytest.raises(ProviderError) as info:
        await get_adapter("openai").list_models(session, provider("openai", f"{base}/v1", api_key="wrong"), timeout=5)
    assert info.value.error_class is E.AUTH and info.value.classification.scope is Scope.CREDENTIAL
    assert "wrong" not in str(info.value)


async def test_anthropic_listing_follows_has_more(serve: Serve, session: aiohttp.ClientSession) -> None:
    async def models(request: web.Request) -> web.Response:
        assert request.headers["anthropic-version"] == "2023-06-01"
        if request.query.get("after_id") == "claude-b":
            return web.json_response(
                {
                    "data": [{"type": "model", "id": "claude-c"}],
                    "has_more": False,
                    "first_id": "claude-c",
                    "last_id": "claude-c",
                }
            )
        return web.json_response(
            {
                "data": [{"type": "model", "id": "claude-a"}, {"type": "model", "id": "claude-b"}],
                "has_more": True,
                "first_id": "claude-a",
                "last_id": "claude-b",
            }
        )

    base = await serve(app_with({"GET /v1/models": models}))
    listing = await get_adapter("anthropic").list_models(session, provider("anthropic", base), timeout=5)
    assert listing.models == ["claude-a", "claude-b", "claude-c"]


async def test_gemini_listing_follows_page_tokens_and_strips_prefix(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    async def models(request: web.Request) -> web.Response:
        assert request.headers["x-goog-api-key"] == "sk-test-secret-key-123456"
        if request.query.get("pageToken") == "p2":
            return web.json_response({"models": [{"name": "models/gemini-2.5-pro"}]})
        return web.json_response({"models": [{"name": "models/gemini-2.5-flash"}], "nextPageToken": "p2"})

    base = await serve(app_with({"GET /v1beta/models": models}))
    listing = await get_adapter("gemini").list_models(session, provider("gemini", f"{base}/v1beta"), timeout=5)
    assert listing.models == ["gemini-2.5-flash", "gemini-2.5-pro"]


async def test_listing_garbage_is_bad_response(serve: Serve, session: aiohttp.ClientSession) -> None:
    async def models(request: web.Request) -> web.Response:
        return web.Response(text="<html>oops</html>", content_type="text/html")

    base = await serve(app_with({"GET /v1/models": models}))
    with pytest.raises(ProviderError) as info:
        await get_adapter("openai").list_models(session, provider("openai", f"{base}/v1"), timeout=5)
    assert info.value.error_class is E.BAD_RESPONSE


async def test_openai_probe_measures_ttft_tokens_per_second_and_headroom(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    bodies: list[dict[str, object]] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        bodies.append(await request.json())
        events = [
            b": keep-alive\n\n",
            oa_chunk({"role": "assistant", "content": ""}),
            oa_chunk({"content": "Hi"}),
            oa_chunk({"content": " there"}, "stop"),
            oa_chunk({}, usage={"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}),
            b"data: [DONE]\n\n",
        ]
        return await sse(
            request,
            events,
            {
                "x-ratelimit-limit-tokens": "1000",
                "x-ratelimit-remaining-tokens": "250",
                "x-ratelimit-reset-tokens": "1s",
            },
        )

    base = await serve(app_with({"POST /v1/chat/completions": chat}))
    ticks = iter(float(i) for i in range(100))
    result = await calls.probe_completion(
        get_adapter("openai"),
        session,
        provider("openai", f"{base}/v1"),
        "gpt-4o",
        prompt="Say hi",
        max_tokens=4,
        timeout=5,
        monotonic=lambda: next(ticks),
    )
    assert result.classification.error_class is E.OK
    assert bodies[0]["max_tokens"] == 4 and bodies[0]["stream"] is True and bodies[0]["model"] == "gpt-4o"
    assert (result.output_tokens, result.input_tokens) == (3, 5)
    assert result.ttft_s is not None and result.latency_s is not None and result.ttft_s < result.latency_s
    assert result.tokens_per_s is not None and result.tokens_per_s > 0
    assert result.headroom is not None and result.headroom.ratio == 0.25


async def test_anthropic_probe_mid_stream_overload_is_classified(serve: Serve, session: aiohttp.ClientSession) -> None:
    async def messages(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        assert body["max_tokens"] == 2 and body["stream"] is True
        return await sse(
            request,
            [
                b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":3}}}\n\n',
                b'event: ping\ndata: {"type":"ping"}\n\n',
                b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}\n\n',
                b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
            ],
        )

    base = await serve(app_with({"POST /v1/messages": messages}))
    result = await get_adapter("anthropic").probe_completion(
        session, provider("anthropic", base), "c", prompt="x", max_tokens=2, timeout=5
    )
    assert result.classification.error_class is E.OVERLOADED
    assert result.ttft_s is not None


async def test_gemini_probe_ok_and_error_status(serve: Serve, session: aiohttp.ClientSession) -> None:
    async def ok(request: web.Request) -> web.StreamResponse:
        assert request.query["alt"] == "sse"
        doc = {
            "candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1, "totalTokenCount": 3},
        }
        return await sse(request, [b"data: " + orjson.dumps(doc) + b"\r\n\r\n"])

    async def limited(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "error": {
                    "code": 429,
                    "message": "quota",
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"}],
                }
            },
            status=429,
        )

    base = await serve(app_with({"POST /v1beta/models/{m}": ok, "POST /limited/models/{m}": limited}))
    good = await get_adapter("gemini").probe_completion(
        session, provider("gemini", f"{base}/v1beta"), "gemini-2.5-flash", prompt="x", max_tokens=1, timeout=5
    )
    assert good.classification.error_class is E.OK and good.output_tokens == 1
    bad = await get_adapter("gemini").probe_completion(
        session, provider("gemini", f"{base}/limited"), "gemini-2.5-flash", prompt="x", max_tokens=1, timeout=5
    )
    assert bad.classification.error_class is E.RATE_LIMITED and bad.classification.retry_after_s == 26.0


async def test_refused_connection_is_connect(session: aiohttp.ClientSession) -> None:
    p = provider("openai", f"http://127.0.0.1:{free_port()}/v1")
    result = await get_adapter("openai").probe_completion(session, p, "m", prompt="x", max_tokens=1, timeout=5)
    assert result.classification.error_class is E.CONNECT
    with pytest.raises(ProviderError) as info:
        await get_adapter("openai").list_models(session, p, timeout=5)
    assert info.value.error_class is E.CONNECT


async def test_hang_is_timeout(serve: Serve, session: aiohttp.ClientSession) -> None:
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    base = await serve(app_with({"POST /v1/chat/completions": hang, "GET /v1/models": hang}))
    result = await get_adapter("openai").probe_completion(
        session, provider("openai", f"{base}/v1"), "m", prompt="x", max_tokens=1, timeout=0.2
    )
    assert result.classification.error_class is E.TIMEOUT
    with pytest.raises(ProviderError) as info:
        await get_adapter("openai").list_models(session, provider("openai", f"{base}/v1"), timeout=0.2)
    assert info.value.error_class is E.TIMEOUT


async def test_oversized_bodies_are_bad_response(
    serve: Serve, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def big_stream(request: web.Request) -> web.StreamResponse:
        return await sse(request, [oa_chunk({"content": "x" * 100}) for _ in range(50)])

    async def big_json(request: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"1," * 5000 + b"1]", content_type="application/json")

    base = await serve(app_with({"POST /v1/chat/completions": big_stream, "GET /v1/models": big_json}))
    monkeypatch.setattr(calls, "MAX_BODY_BYTES", 1000)
    result = await get_adapter("openai").probe_completion(
        session, provider("openai", f"{base}/v1"), "m", prompt="x", max_tokens=1, timeout=5
    )
    assert result.classification.error_class is E.BAD_RESPONSE and result.classification.code == "too_large"
    with pytest.raises(ProviderError) as info:
        await calls.fetch(
            session, UpstreamRequest("GET", f"{base}/v1/models", {}), timeout=5, provider_id="p", max_bytes=1000
        )
    assert info.value.error_class is E.BAD_RESPONSE


async def test_stream_that_stops_without_terminator_is_bad_response(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    async def cut(request: web.Request) -> web.StreamResponse:
        return await sse(request, [oa_chunk({"content": "a"}), oa_chunk({"content": "b"})])

    base = await serve(app_with({"POST /v1/chat/completions": cut}))
    result = await get_adapter("openai").probe_completion(
        session, provider("openai", f"{base}/v1"), "m", prompt="x", max_tokens=1, timeout=5
    )
    assert result.classification.error_class is E.BAD_RESPONSE and result.classification.code == "truncated"


async def test_connection_reset_mid_stream_is_bad_response(serve: Serve, session: aiohttp.ClientSession) -> None:
    async def reset(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(oa_chunk({"content": "a"}))
        assert request.transport is not None
        request.transport.abort()  # RST after the first chunk (NET-2)
        return resp

    base = await serve(app_with({"POST /v1/chat/completions": reset}))
    result = await get_adapter("openai").probe_completion(
        session, provider("openai", f"{base}/v1"), "m", prompt="x", max_tokens=1, timeout=5
    )
    assert result.classification.error_class is E.BAD_RESPONSE
