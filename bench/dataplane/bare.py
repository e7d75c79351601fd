"""A bare aiohttp pass-through (no routing, no accounting): the floor Turnout's own cost is measured against.

Run: `python -m bench.dataplane.bare UPSTREAM_URL PORT`.
"""

from __future__ import annotations

import sys

import aiohttp
from aiohttp import web

__all__ = ["main"]

SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("bare_session", aiohttp.ClientSession)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    upstream, port = args[0], int(args[1])

    async def startup(app: web.Application) -> None:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def cleanup(app: web.Application) -> None:
        await app[SESSION].close()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        async with request.app[SESSION].post(upstream, data=body, headers={"content-type": "application/json"}) as r:
            data = await r.read()
        return web.Response(body=data, status=r.status, content_type="application/json")

    import uvloop

    uvloop.install()
    app = web.Application()
    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_post("/v1/chat/completions", handle)
    web.run_app(
        app, host="127.0.0.1", port=port, access_log=None, print=lambda *_: print("ready", flush=True), backlog=4096
    )


if __name__ == "__main__":
    main()
