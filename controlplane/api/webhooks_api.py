"""Webhook endpoints over HTTP: create (secret shown once), list, get, delete, test, deliveries, redeliver.

All of it needs the `admin` scope: endpoints' URLs can carry receivers' own tokens.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from controlplane.api.jsonio import ApiError, choice_param, int_param, json_response, read_body
from controlplane.api.schemas import WebhookCreate
from controlplane.events import Event
from controlplane.seams import ControlApiDeps
from controlplane.webhooks.outbox import Outbox, lock_endpoints
from controlplane.webhooks.rows import PENDING, WebhookDelivery, WebhookEndpoint, new_endpoint_id
from controlplane.webhooks.service import append_and_publish
from controlplane.webhooks.signing import generate_secret
from controlplane.webhooks.urls import WebhookUrlError, check_resolved, validate_url

__all__ = ["WebhookHandlers", "endpoint_dict", "delivery_dict"]


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def endpoint_dict(ep: WebhookEndpoint) -> dict[str, Any]:
    """The public view of an endpoint: never the secret."""
    return {
        "id": ep.id,
        "url": ep.url,
        "events": ep.events,
        "description": ep.description,
        "enabled": ep.enabled,
        "disabled_reason": ep.disabled_reason,
        "consecutive_failures": ep.consecutive_failures,
        "created_at": _iso(ep.created_at),
    }


def delivery_dict(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "endpoint_id": d.endpoint_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": _iso(d.next_attempt_at) if d.status == PENDING else None,
        "last_error": d.last_error,
        "last_status_code": d.last_status_code,
        "created_at": _iso(d.created_at),
        "delivered_at": _iso(d.delivered_at),
    }


class WebhookHandlers:
    def __init__(self, deps: ControlApiDeps, outbox: Outbox) -> None:
        self.deps = deps
        self.outbox = outbox

    def _engine(self) -> Engine:
        return self.deps.store.engine

    def _get(self, s: Session, endpoint_id: str) -> WebhookEndpoint:
        ep = s.get(WebhookEndpoint, endpoint_id)
        if ep is None:
            raise ApiError(404, "not_found", f"unknown webhook endpoint {endpoint_id[:60]!r}", "id")
        return ep

    async def create(self, request: web.Request) -> web.Response:
        body = await read_body(request, WebhookCreate)
        allow = self.deps.config.webhooks.allow_private_networks
        try:
            url = validate_url(body.url, allow)
            await check_resolved(url, allow)
        except WebhookUrlError as exc:
            raise ApiError(422, "invalid_field", f"url: {exc.problem}", "url") from None
        ep = WebhookEndpoint(
            id=new_endpoint_id(),
            url=url,
            events_json=json.dumps(body.events),
            description=body.description,
            secret=generate_secret(),
            enabled=True,
            created_at=self.deps.clock.wall().timestamp(),
        )

        def insert() -> dict[str, Any]:
            with Session(self._engine()) as s:
                lock_endpoints(s, exclusive=True)  # in-flight event appends finish first (see lock_endpoints)
                s.add(ep)
                s.commit()
                s.refresh(ep)
                return {**endpoint_dict(ep), "secret": ep.secret}

        created = await asyncio.to_thread(insert)
        return json_response(created, 201, headers={"Location": f"/api/v1/webhooks/{ep.id}"})

    async def list(self, request: web.Request) -> web.Response:
        def load() -> list[dict[str, Any]]:
            with Session(self._engine()) as s:
                return [
                    endpoint_dict(e)
                    for e in s.exec(
                        select(WebhookEndpoint).order_by(col(WebhookEndpoint.created_at), col(WebhookEndpoint.id))
                    )
                ]

        return json_response({"webhooks": await asyncio.to_thread(load)})

    async def get(self, request: web.Request) -> web.Response:
        ep_id = request.match_info["id"]

        def load() -> dict[str, Any]:
            with Session(self._engine()) as s:
                return endpoint_dict(self._get(s, ep_id))

        return json_response(await asyncio.to_thread(load))

    async def delete(self, request: web.Request) -> web.Response:
        ep_id = request.match_info["id"]

        def remove() -> None:
            with Session(self._engine()) as s:
                ep = self._get(s, ep_id)
                s.execute(delete(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == ep_id))
                s.delete(ep)
                s.commit()

        await asyncio.to_thread(remove)
        return web.Response(status=204)

    async def enable(self, request: web.Request) -> web.Response:
        """Re-enable a disabled endpoint: its counter resets and its queued deliveries resume, in order."""
        ep_id = request.match_info["id"]

        def update() -> dict[str, Any]:
            with Session(self._engine()) as s:
                ep = self._get(s, ep_id)
                ep.enabled, ep.disabled_reason, ep.consecutive_failures = True, None, 0
                s.add(ep)
                s.commit()
                s.refresh(ep)
                return endpoint_dict(ep)

        out = await asyncio.to_thread(update)
        self.outbox.wake()
        return json_response(out)

    async def test(self, request: web.Request) -> web.Response:
        ep_id = request.match_info["id"]

        def check() -> None:
            with Session(self._engine()) as s:
                if not self._get(s, ep_id).enabled:
                    raise ApiError(
                        409,
                        "endpoint_disabled",
                        f"webhook endpoint {ep_id} is disabled; re-enable it first (POST …/enable)",
                    )

        await asyncio.to_thread(check)
        event = Event(
            type="webhook.test",
            at=self.deps.clock.wall(),
            subject=ep_id,
            data={"endpoint_id": ep_id, "message": "test delivery from Turnout"},
        )
        stored = await append_and_publish(self.deps.store, self.deps.bus, self.deps.metrics, [event])
        event_id = int(stored[0].id or 0)

        def find() -> str | None:
            with Session(self._engine()) as s:
                d = s.exec(
                    select(WebhookDelivery).where(
                        WebhookDelivery.event_id == event_id, WebhookDelivery.endpoint_id == ep_id
                    )
                ).first()
                return d.id if d else None

        return json_response({"event_id": event_id, "delivery_id": await asyncio.to_thread(find)}, 202)

    async def deliveries(self, request: web.Request) -> web.Response:
        ep_id = request.match_info["id"]
        status = choice_param(request, "status", ("pending", "delivered", "dead"))
        limit = int_param(request, "limit", minimum=1, maximum=500, default=100) or 100

        def load() -> list[dict[str, Any]]:
            with Session(self._engine()) as s:
                self._get(s, ep_id)
                q = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == ep_id)
                if status is not None:
                    q = q.where(WebhookDelivery.status == status)
                return [delivery_dict(d) for d in s.exec(q.order_by(col(WebhookDelivery.seq).desc()).limit(limit))]

        return json_response({"deliveries": await asyncio.to_thread(load)})

    async def redeliver(self, request: web.Request) -> web.Response:
        ep_id, msg_id = request.match_info["id"], request.match_info["delivery"]
        now = self.deps.clock.wall().timestamp()

        def requeue() -> dict[str, Any]:
            with Session(self._engine()) as s:
                self._get(s, ep_id)
                d = s.exec(
                    select(WebhookDelivery).where(WebhookDelivery.id == msg_id, WebhookDelivery.endpoint_id == ep_id)
                ).first()
                if d is None:
                    raise ApiError(
                        404, "not_found", f"unknown delivery {msg_id[:60]!r} for endpoint {ep_id}", "delivery"
                    )
                # Same message id: receivers that already have it drop the repeat.
                d.status, d.attempts, d.next_attempt_at = PENDING, 0, now
                s.add(d)
                s.commit()
                s.refresh(d)
                return delivery_dict(d)

        out = await asyncio.to_thread(requeue)
        self.outbox.wake()
        return json_response({"delivery": out}, 202)
