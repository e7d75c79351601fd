"""The data plane's app served by uvicorn's httptools protocol instead of Turnout's own listener (bench only).

STYLE.md: a hand-written part earns its place by a measured margin over the maintained alternative. This ASGI
shim hands uvicorn's requests to the very same handlers (`dataplane/http/messages.App`), so `python -m bench
listener` measures the two HTTP servers in front of identical work. It serves whole answers only: the bench's
load is non-streamed chat completions, and a streamed answer writes to the listener's connection directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dataplane.http.messages import App, Request, Response

__all__ = ["asgi_app", "serve"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def asgi_app(app: App) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI application calling `app`'s handlers (lifespan runs its startup and cleanup hooks)."""

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                for hook in app.on_startup:
                    await hook(app)
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                for hook in app.on_cleanup:
                    await hook(app)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            name, value = k.decode("latin-1"), v.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        method, path = scope["method"], scope["path"]
        req = Request(app, method, path, scope["query_string"].decode("latin-1"), headers, b"".join(chunks))
        handler = app.routes.get((method, path))
        resp = await handler(req) if handler else Response(b'{"error":"not found"}', status=404)
        if not isinstance(resp, Response):
            raise RuntimeError("the uvicorn bench shim serves whole answers only")
        head = [(b"content-type", resp.content_type.encode()), (b"content-length", str(len(resp.body)).encode())]
        head += [(k.encode(), v.encode()) for k, v in (resp.headers or {}).items()]
        await send({"type": "http.response.start", "status": resp.status, "headers": head})
        await send({"type": "http.response.body", "body": resp.body})

    return handle


async def serve(app: App, host: str, port: int, on_ready: Callable[[], None]) -> None:
    """Serve `app` with uvicorn (uvloop, httptools, no access log) until SIGTERM."""
    import asyncio

    import uvicorn

    config = uvicorn.Config(
        asgi_app(app),
        host=host,
        port=port,
        loop="none",  # the caller installed uvloop, as for the listener
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    on_ready()
    await task
