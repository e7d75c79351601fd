"""An instant OpenAI-compatible upstream for the data-plane bench: canned JSON or SSE, as fast as aiohttp allows.

One process serves several ports; each port has its own mode, switchable at runtime through
`POST /_admin/mode` with `{"mode": "ok" | "region_blocked" | "hang" | "server_error"}`. The mode applies to
everything Turnout sends: live chat completions and its probes alike (the catalogue's `GET /v1/models`, and
completion probes, which are chat completions too), so a hanging upstream hangs its probes as well and a
recovered one answers them. `GET /_admin/stats` counts live chat requests (`count`) apart from probes
(`catalogue_probes`, `completion_probes`): a chat request carrying `PROBE_PROMPT` is a completion probe (the
bench configures Turnout's `probes.completion.prompt` with it). The model list names `models` (the bench's
config calls its models `m`). Run: `python -m bench.dataplane.upstream [--chunk-delay=S] [--chunks=N] PORT [PORT…]`.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from aiohttp import web

__all__ = ["MODE", "PROBE_PROMPT", "build_upstream", "main"]

# What Turnout's completion probes ask when the bench runs them (`probes.completion.prompt`): how this upstream
# tells a probe from live traffic.
PROBE_PROMPT = "bench probe: reply with the single word ok"

_COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
)


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    doc = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(doc) + b"\n\n"


_USAGE = (
    b"data: "
    + orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1767225600,
            "model": "bench",
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }
    )
    + b"\n\n"
)
_REGION = orjson.dumps(
    {
        "error": {
            "message": "Country, region, or territory not supported",
            "type": "request_forbidden",
            "param": None,
            "code": "unsupported_country_region_territory",
        }
    }
)
_SERVER = orjson.dumps(
    {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}}
)

MODE: web.AppKey[dict[str, str | int]] = web.AppKey("bench_mode", dict)


async def _failure(mode: str | int) -> web.Response | None:
    """The answer of a failing mode (a hang never answers); None in mode ok."""
    if mode == "hang":
        await asyncio.sleep(3600)
    if mode == "region_blocked":
        return web.Response(body=_REGION, status=403, content_type="application/json")
    if mode == "server_error":
        return web.Response(body=_SERVER, status=500, content_type="application/json")
    return None


def build_upstream(
    stream_chunks: int = 3, chunk_delay_s: float = 0.0, models: tuple[str, ...] = ("m",)
) -> web.Application:
    """One port's app. `chunk_delay_s` spaces stream chunks (the streaming-concurrency phase holds streams open);
    `models` is what its model list names."""
    app = web.Application()
    state: dict[str, str | int] = {"mode": "ok", "count": 0, "catalogue_probes": 0, "completion_probes": 0}
    app[MODE] = state
    listing = orjson.dumps(
        {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 1767225600, "owned_by": "bench"} for m in models],
        }
    )
    probe_marker = PROBE_PROMPT.encode()

    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        counter = "completion_probes" if probe_marker in raw else "count"
        state[counter] = int(state[counter]) + 1
        failed = await _failure(state["mode"])
        if failed is not None:
            return failed
        if b'"stream":true' not in raw:
            return web.Response(body=_COMPLETION, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_chunk({"role": "assistant", "content": ""}))
        for _ in range(stream_chunks):
            if chunk_delay_s:
                await asyncio.sleep(chunk_delay_s)
            await resp.write(_chunk({"content": "ok "}))
        await resp.write(_chunk({}, "stop") + _USAGE + b"data: [DONE]\n\n")
        return resp

    async def catalogue(request: web.Request) -> web.Response:
        state["catalogue_probes"] = int(state["catalogue_probes"]) + 1
        failed = await _failure(state["mode"])
        return failed if failed is not None else web.Response(body=listing, content_type="application/json")

    async def set_mode(request: web.Request) -> web.Response:
        state["mode"] = (await request.json())["mode"]
        return web.json_response(state)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(state)

    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", catalogue)
    app.router.add_post("/_admin/mode", set_mode)
    app.router.add_get("/_admin/stats", stats)
    return app


async def _serve(ports: list[int], chunk_delay_s: float, chunks: int) -> None:
    runners = []
    for port in ports:
        runner = web.AppRunner(build_upstream(stream_chunks=chunks, chunk_delay_s=chunk_delay_s), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        runners.append(runner)
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for r in runners:
            await r.cleanup()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    delay, chunks = 0.0, 3
    while args and args[0].startswith("--"):
        name, _, value = args.pop(0).partition("=")
        if name == "--chunk-delay":
            delay = float(value)
        elif name == "--chunks":
            chunks = int(value)
        else:
            raise SystemExit(f"unknown option {name}; use --chunk-delay=S --chunks=N PORT…")
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        pass
    asyncio.run(_serve([int(p) for p in args], delay, chunks))


if __name__ == "__main__":
    main()
