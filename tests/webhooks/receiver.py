"""A real aiohttp webhook receiver on loopback that verifies every delivery with the `standardwebhooks` package."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support import free_port


@dataclass
class Received:
    msg_id: str
    body: dict[str, Any]
    verified: bool


@dataclass
class Receiver:
    """Answers each request with the next scripted status (then 200 forever); records what it got."""

    secret: str | None = None
    script: list[int] = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    port: int = 0
    on_receive: Callable[[int], None] | None = None  # called with the request count before answering
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        verified = False
        body: dict[str, Any] = {}
        if self.secret is not None:
            try:
                body = Webhook(self.secret).verify(raw, dict(request.headers))
                verified = True
            except WebhookVerificationError:
                verified = False
        self.got.append(Received(request.headers.get("webhook-id", ""), body, verified))
        if self.on_receive is not None:
            self.on_receive(len(self.got))
        status = self.script.pop(0) if self.script else 200
        return web.Response(status=status, text="ok" if status < 300 else "nope")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def unique(self) -> list[Received]:
        """De-duplicated by webhook-id, first arrival order (what a careful receiver keeps)."""
        seen: dict[str, Received] = {}
        for r in self.got:
            if r.verified and r.msg_id not in seen:
                seen[r.msg_id] = r
        return list(seen.values())


def types(items: Iterable[Received]) -> list[str]:
    return [str(r.body.get("type")) for r in items]
