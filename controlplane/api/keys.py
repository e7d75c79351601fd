"""Client keys over the control API (all admin): create (the key shown once), list, show with this period's use,
revoke, rotate, and the key ring data replicas check requests against.

`key_operations(rt)` returns the operations; controlplane/api/routes.py lists them with the others, so they get
the same auth, JSON errors and OpenAPI document.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from controlplane.api.jsonio import ApiError, json_response, read_body
from controlplane.api.openapi import Operation, Param
from controlplane.api.schemas import ErrorResponse, KeyCreated, KeyDetail, KeyModel, KeyRingModel, KeysResponse
from controlplane.config import Config
from controlplane.keys.model import KeySpec
from controlplane.keys.store import KeyStore
from controlplane.seams import ControlApiDeps

__all__ = ["key_operations", "check_spec"]

_ID = Param("id", "path", {"type": "string", "minLength": 1}, description="the key's public id")


def check_spec(spec: KeySpec, config: Config, now: float) -> None:
    """Refuse what the store would accept but the data plane could never honour: unknown routes, a past expiry."""
    known = {r.name for r in config.routes} | config.target_keys()
    for i, route in enumerate(spec.routes or ()):
        if route not in known:
            raise ApiError(
                422,
                "invalid_field",
                f"routes[{i}]: unknown route {route[:80]!r}; known: {', '.join(sorted(known)) or '(none)'}",
                "routes",
            )
    if spec.expires_at is not None and spec.expires_at.timestamp() <= now:
        raise ApiError(422, "invalid_field", "expires_at: must be in the future", "expires_at")


class _KeyHandlers:
    def __init__(self, rt: ControlApiDeps) -> None:
        self.rt = rt
        self._store: KeyStore | None = None

    def _keys(self) -> KeyStore:
        if self._store is None:  # the store exists once the runtime has started, after the routes are built
            self._store = KeyStore(self.rt.store.engine, self.rt.clock)
        return self._store

    def _now(self) -> float:
        return float(self.rt.clock.wall().timestamp())

    async def create(self, request: web.Request) -> web.Response:
        spec = await read_body(request, KeySpec)
        check_spec(spec, self.rt.config, self._now())
        record, key = await asyncio.to_thread(self._keys().create, spec)
        body = {**record.public(self._now()), "key": key}
        return json_response(body, 201, headers={"Location": f"/api/v1/keys/{record.id}"})

    async def list(self, request: web.Request) -> web.Response:
        records = await asyncio.to_thread(self._keys().records)
        now = self._now()
        return json_response({"keys": [r.public(now) for r in records]})

    async def show(self, request: web.Request) -> web.Response:
        key_id = request.match_info["id"]

        def load() -> dict[str, Any] | None:
            store = self._keys()
            record = store.get(key_id)
            if record is None:
                return None
            return {**record.public(self._now()), "use": store.use(record).public()}

        found = await asyncio.to_thread(load)
        if found is None:
            raise ApiError(404, "not_found", f"unknown key {key_id[:40]!r}", "id")
        return json_response(found)

    async def revoke(self, request: web.Request) -> web.Response:
        key_id = request.match_info["id"]
        record = await asyncio.to_thread(self._keys().revoke, key_id)
        if record is None:
            raise ApiError(404, "not_found", f"unknown key {key_id[:40]!r}", "id")
        return json_response(record.public(self._now()))

    async def rotate(self, request: web.Request) -> web.Response:
        key_id = request.match_info["id"]
        try:
            rotated = await asyncio.to_thread(self._keys().rotate, key_id)
        except ValueError as exc:
            raise ApiError(409, "revoked", str(exc), "id") from None
        if rotated is None:
            raise ApiError(404, "not_found", f"unknown key {key_id[:40]!r}", "id")
        record, key = rotated
        return json_response({**record.public(self._now()), "key": key})

    async def ring(self, request: web.Request) -> web.Response:
        ring = await asyncio.to_thread(self._keys().ring)
        return json_response(ring.to_wire())


def key_operations(rt: ControlApiDeps) -> list[Operation]:
    """The key operations, bound to `rt` (its store, clock and config)."""
    h = _KeyHandlers(rt)
    o = Operation
    return [
        o(
            "POST",
            "/api/v1/keys",
            "createKey",
            "Make a client key for the data plane; the key is shown only in this response",
            "keys",
            "admin",
            {201: KeyCreated},
            (),
            KeySpec,
            handler=h.create,
        ),
        o(
            "GET",
            "/api/v1/keys",
            "listKeys",
            "Every client key (never the key)",
            "keys",
            "admin",
            {200: KeysResponse},
            handler=h.list,
        ),
        o(
            "GET",
            "/api/v1/keys/ring",
            "keyRing",
            "Usable keys' hashes, limits and spend this period (data replicas read it)",
            "keys",
            "admin",
            {200: KeyRingModel},
            handler=h.ring,
        ),
        o(
            "GET",
            "/api/v1/keys/{id}",
            "getKey",
            "One key: limits, state and use this budget period",
            "keys",
            "admin",
            {200: KeyDetail},
            (_ID,),
            handler=h.show,
        ),
        o(
            "DELETE",
            "/api/v1/keys/{id}",
            "revokeKey",
            "Revoke a key (every data plane refuses it within auth.data.refresh_interval)",
            "keys",
            "admin",
            {200: KeyModel},
            (_ID,),
            handler=h.revoke,
        ),
        o(
            "POST",
            "/api/v1/keys/{id}/rotate",
            "rotateKey",
            "A new key for the same id; the old one stops working; shown only in this response",
            "keys",
            "admin",
            {200: KeyCreated, 409: ErrorResponse},
            (_ID,),
            handler=h.rotate,
        ),
    ]
