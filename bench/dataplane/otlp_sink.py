"""An OTLP/HTTP trace sink for the data-plane bench: accepts `POST /v1/traces`, counts the bytes and answers an
empty ExportTraceServiceResponse, so a traced `turnout serve` pays its full export cost (spans built, batched,
encoded and sent) while nothing is kept. Run: `python -m bench.dataplane.otlp_sink PORT`."""

from __future__ import annotations

import sys

from aiohttp import web

__all__ = ["main"]


def main() -> None:
    received = {"requests": 0, "bytes": 0}

    async def traces(request: web.Request) -> web.Response:
        received["requests"] += 1
        received["bytes"] += len(await request.read())
        return web.Response(body=b"", content_type="application/x-protobuf")  # an empty message is valid protobuf

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(received)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/_stats", stats)
    web.run_app(
        app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=lambda *_: print("ready", flush=True)
    )


if __name__ == "__main__":
    main()
