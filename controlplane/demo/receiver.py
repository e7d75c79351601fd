"""A local webhook receiver for the demo: verifies each Standard Webhooks signature and keeps what arrived."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from controlplane.webhooks.signing import verify

__all__ = ["Delivery", "WebhookReceiver"]


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    type: str
    subject: str
    verified: bool


@dataclass
class WebhookReceiver:
    """POST / on a loopback port. `secret` is set after the endpoint is registered (the API returns it once)."""

    secret: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{int(self._runner.addresses[0][1])}/"  # the real port when 0 was asked

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        try:
            ts = int(request.headers.get("webhook-timestamp", ""))
        except ValueError:
            return web.Response(status=400, text="bad webhook-timestamp")
        ok = bool(self.secret) and verify(self.secret, msg_id, ts, body, request.headers.get("webhook-signature", ""))
        try:
            payload: Any = json.loads(body)
        except json.JSONDecodeError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        if any(d.webhook_id == msg_id for d in self.deliveries):  # at-least-once: a redelivery is not a new event
            return web.Response(status=204)
        self.deliveries.append(Delivery(msg_id, str(payload.get("type", "?")), str(payload.get("subject", "")), ok))
        return web.Response(status=204 if ok else 401)

    @property
    def verified(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.verified]
