"""Security: no secret in any output; admin endpoints refuse read tokens; the webhook SSRF guard holds against
redirects and DNS answers to private addresses; tokens and signatures are compared in constant time."""

from __future__ import annotations

import ast
import asyncio
import json
import re
import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import ResolveResult
from sqlalchemy import create_engine

from adapters.sim import Simulator
from controlplane.clock import SystemClock
from controlplane.config import WebhookConfig
from controlplane.webhooks import urls as webhook_urls
from controlplane.webhooks.dispatcher import Dispatcher
from tests.chaos.conftest import ADMIN, OA, READER, SENTINELS, Stack, sim_config
from tests.chaos.proc import Serve, until
from tests.support import free_port
from tests.webhooks.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]


# -- secrets never leave ------------------------------------------------------------------------------
@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator.from_yaml(sim_config())
    await s.start()
    yield s
    await s.stop()


@pytest.mark.integration
@pytest.mark.slow
async def test_sentinel_secrets_appear_in_no_log_event_api_output_metric_or_error(
    sim: Simulator, tmp_path: Path
) -> None:
    db = tmp_path / "turnout.db"
    serve = Serve(
        sim,
        tmp_path,
        f"sqlite:///{db}",
        probes={
            "interval": "300ms",
            "jitter": 0.1,
            "timeout": "2s",
            "kinds": {
                "catalogue": {"interval": "300ms"},
                "completion": {"interval": "300ms"},
                "status_page": {"interval": "1s"},
            },
        },
    )
    receiver = await Receiver().start()
    outputs: list[str] = []  # every byte Turnout sent us
    serve.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
            await until(lambda: serve.ready(http), 60, "start")

            async def call(
                method: str, path: str, token: str | None = None, base: str | None = None, **kw: Any
            ) -> tuple[int, str]:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                headers.update(kw.pop("headers", {}))
                async with http.request(method, f"{base or serve.control}{path}", headers=headers, **kw) as r:
                    text = await r.text(errors="replace")
                    outputs.append(f"{method} {path} -> {r.status} {dict(r.headers)}\n{text}")
                    return r.status, text

            status, created = await call("POST", "/api/v1/webhooks", ADMIN, json={"url": receiver.url})
            assert status == 201
            webhook_secret = json.loads(created)["secret"]
            outputs.pop()  # the one response that shows the secret, once, by design
            receiver.secret = webhook_secret
            sim.set_fault("oa", "auth")  # a credential failure: its evidence travels into events, API, webhooks
            sim.set_fault("an", "region_blocked")
            await until(lambda: _withdrawn(serve, http), 30, "withdrawals")
            ep = json.loads(created)["id"]
            for path in (
                "/api/v1/table",
                "/api/v1/routes",
                "/api/v1/routes/main",
                f"/api/v1/targets/{OA}",
                "/api/v1/providers",
                "/api/v1/events?limit=500",
                "/api/v1/uptime",
                "/api/v1/summary",
                "/openapi.json",
                "/",
                "/metrics",
                "/readyz",
                "/api/v1/nope",
                f"/api/v1/targets/{OA}/nope",
            ):
                await call("GET", path)
            for path in ("/api/v1/webhooks", f"/api/v1/webhooks/{ep}", f"/api/v1/webhooks/{ep}/deliveries"):
                await call("GET", path, ADMIN)
            await call("GET", "/api/v1/webhooks", READER)  # 403
            await call("GET", "/api/v1/table", "wrong-" + ADMIN)  # 401 must not echo the token it got
            await call("POST", "/api/v1/config/reload", READER)
            await call("POST", f"/api/v1/webhooks/{ep}/test", ADMIN)
            await call(
                "POST", "/api/v1/webhooks", ADMIN, json={"url": f"http://user:{ADMIN}@10.0.0.1/x"}
            )  # refused URL
            body = {"model": "main", "messages": [{"role": "user", "content": "hi"}], "turnout": {"debug": True}}
            for req in (body, {**body, "stream": True}, {**body, "model": OA}, {"model": 1}):
                # a client's own key must not be echoed or forwarded into anything we show
                await call(
                    "POST",
                    "/chat/completions",
                    base=serve.data,
                    json=req,
                    headers={"Authorization": f"Bearer {READER}"},
                )
            await call("GET", "/models", base=serve.data)
            # Client keys: made (shown once), used on every client API, listed, rotated, revoked; never shown again.
            status, made = await call("POST", "/api/v1/keys", ADMIN, json={"name": "team-a", "rpm": 1000})
            assert status == 201
            client_key, key_id = json.loads(made)["key"], json.loads(made)["id"]
            outputs.pop()  # the one response that shows the key, by design
            status, rotated = await call("POST", f"/api/v1/keys/{key_id}/rotate", ADMIN)
            assert status == 200
            rotated_key = json.loads(rotated)["key"]
            outputs.pop()
            for key, want in ((client_key, 401), (rotated_key, 200)):  # the old one is refused, the new one answered
                for req in (body, {**body, "stream": True}):
                    status, _ = await call(
                        "POST",
                        "/chat/completions",
                        base=serve.data,
                        json=req,
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    assert status == want, (key == client_key, req.get("stream"), status)
                # The other client APIs ask for the same key (Bearer from OpenAI SDKs, x-api-key from Anthropic's).
                bearer, x_api_key = (
                    {"Authorization": f"Bearer {key}"},
                    {"x-api-key": key, "anthropic-version": "2023-06-01"},
                )
                said: dict[str, Any] = {
                    "model": "main",
                    "messages": [{"role": "user", "content": "hi"}],
                    "turnout": {"debug": True},
                }
                cases: list[tuple[str, dict[str, Any], dict[str, str]]] = [
                    ("/responses", {"model": "main", "input": "hi", "turnout": {"debug": True}}, bearer),
                    ("/responses", {"model": "main", "input": "hi", "stream": True}, bearer),
                    ("/messages", {**said, "max_tokens": 5}, x_api_key),
                    ("/messages", {**said, "max_tokens": 5, "stream": True}, x_api_key),
                    ("/messages/count_tokens", said, x_api_key),
                    ("/embeddings", {"model": "main", "input": "hi"}, bearer),  # a chat route: 400, past the key
                ]
                for path, payload, sent in cases:
                    status, _ = await call("POST", path, base=serve.data, json=payload, headers=sent)
                    assert (status == 401) == (key == client_key), (path, key == client_key, status)
                await call("GET", "/models", base=serve.data, headers={"x-api-key": key})
            await call(
                "POST", "/chat/completions", base=serve.data, json=body, headers={"Authorization": f"Bearer {READER}"}
            )
            for path in ("/api/v1/keys", f"/api/v1/keys/{key_id}", "/api/v1/keys/ring", "/api/v1/usage?by=key"):
                await call("GET", path, ADMIN)
            await call("DELETE", f"/api/v1/keys/{key_id}", ADMIN)
            await call("GET", "/metrics")
            await call(
                "POST",
                "/chat/completions",
                base=serve.data,
                json=body,
                headers={"Authorization": f"Bearer {rotated_key}"},
            )
            for port in (serve.data_port, serve.control_port):  # a credential inside a header too large to parse: the
                # log must not quote it (aiohttp's parser error does); the 400 echoes it to its own sender, see test_bad_input
                await asyncio.to_thread(
                    _raw,
                    port,
                    b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                    + READER.encode()
                    + b"a" * 20_000
                    + b"\r\n\r\n",
                )
            await receiver_has_events(receiver)
        assert serve.stop() == 0, serve.log[-2000:]
    finally:
        serve.stop()
        await receiver.stop()

    places = {
        "log": serve.log,
        "api/data plane/metrics output": "\n".join(outputs),
        "webhook deliveries": "\n".join(json.dumps(r.body) for r in receiver.got),
        "events table": "\n".join(str(r) for r in _sqlite(db, "SELECT type, subject, data_json FROM events")),
    }
    for where, text in places.items():
        for secret in (*SENTINELS, webhook_secret, client_key, rotated_key):
            assert secret not in text, f"{secret[:12]}… leaked into the {where}"
    # the store holds the webhook secret (it must, to sign) but no provider key or API token
    raw_db = db.read_bytes() + (
        db.with_name(db.name + "-wal").read_bytes() if db.with_name(db.name + "-wal").exists() else b""
    )
    for secret in (*SENTINELS, client_key, rotated_key):  # client keys: only their hashes
        assert secret.encode() not in raw_db, f"{secret[:12]}… stored in the database"
        assert secret.split("_", 2)[-1].encode() not in raw_db, f"{secret[:12]}…'s secret part stored in the database"


async def _withdrawn(serve: Serve, http: aiohttp.ClientSession) -> bool:
    status, table = await serve.get(http, "/api/v1/table")
    return (
        status == 200
        and table["targets"][OA]["state"] == "withdrawn"
        and table["targets"]["an/claude-x"]["state"] == "withdrawn"
    )


async def receiver_has_events(receiver: Receiver) -> None:
    async def some() -> bool:
        return len(receiver.unique()) >= 2

    await until(some, 20, "webhook deliveries")


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        return s.recv(4096)


def _sqlite(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        try:
            return list(conn.execute(sql))
        except sqlite3.OperationalError:  # column names differ: take the whole row
            return list(conn.execute("SELECT * FROM events"))


# -- scopes -----------------------------------------------------------------------------------------------
@pytest.mark.integration
async def test_every_admin_operation_refuses_a_read_token(stack: Stack) -> None:
    status, doc = await stack.api("/openapi.json")
    assert status == 200
    admin_ops = [
        (m.upper(), p)
        for p, ops in doc["paths"].items()
        for m, op in ops.items()
        if isinstance(op, dict) and op.get("security") == [{"bearer": []}]
    ]
    assert len(admin_ops) >= 8, admin_ops  # drain/undrain, reload, webhooks CRUD, deliveries, redeliver, …
    for method, path in admin_ops:
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        kw: dict[str, Any] = (
            {"json": {"url": "https://example.com/h", "reason": "r", "target": OA}}
            if method in ("POST", "PUT", "PATCH")
            else {}
        )
        got, body = await stack.api(concrete, READER, method, **kw)
        assert got == 403, (method, path, got, body)
        assert READER not in json.dumps(body)
        got, _ = await stack.api(concrete, None, method, **kw)
        assert got == 401, (method, path, got)
    assert stack.state(OA) == "closed"  # nothing a read token did changed anything


# -- SSRF -------------------------------------------------------------------------------------------------
class _FakeDNS:
    """Answers every name with one address (a name that re-binds to an internal address after registration)."""

    address = "127.0.0.1"

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=self.address, port=port, family=2, proto=0, flags=0)]

    async def close(self) -> None:
        return None


def _dispatcher(allow: list[str]) -> Dispatcher:
    # attempt() alone never touches the database: an unused in-memory engine
    return Dispatcher(
        engine=create_engine("sqlite://"),
        clock=SystemClock(),
        config=WebhookConfig(allow_private_networks=allow, timeout=3.0),
    )


@pytest.mark.integration
async def test_ssrf_guard_refuses_a_name_resolving_to_a_private_address_at_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhook_urls, "ThreadedResolver", _FakeDNS)
    receiver = await Receiver().start()
    url = f"http://hooks.example.com:{receiver.port}/hook"
    try:
        refused = _dispatcher([])
        result = await refused.attempt(url, "msg_1", "whsec_" + "A" * 32, b"{}")
        await refused.close()
        assert not result.ok and result.error and "SSRF" in result.error, result
        assert receiver.got == []  # not one byte reached the internal address
        allowed = _dispatcher(["127.0.0.0/8"])  # the same path delivers when the network is allow-listed
        result = await allowed.attempt(url, "msg_2", "whsec_" + "A" * 32, b"{}")
        await allowed.close()
        assert result.ok and len(receiver.got) == 1
    finally:
        await receiver.stop()


@pytest.mark.integration
async def test_ssrf_guard_never_follows_a_redirect_inside() -> None:
    internal_hits: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        internal_hits.append(request.path)
        return web.Response(text="secret internal data")

    inside = web.Application()
    inside.router.add_route("*", "/{p:.*}", internal)
    inner_runner = web.AppRunner(inside)
    await inner_runner.setup()
    inner_port = free_port()
    await web.TCPSite(inner_runner, "127.0.0.2", inner_port).start()

    async def bounce(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.2:{inner_port}/admin")

    outside = web.Application()
    outside.router.add_post("/hook", bounce)
    outer_runner = web.AppRunner(outside)
    await outer_runner.setup()
    outer_port = free_port()
    await web.TCPSite(outer_runner, "127.0.0.1", outer_port).start()
    try:
        d = _dispatcher(["127.0.0.1/32"])  # the receiver is allowed; the place it redirects to is not
        result = await d.attempt(f"http://127.0.0.1:{outer_port}/hook", "msg_1", "whsec_" + "A" * 32, b"{}")
        await d.close()
        assert not result.ok and result.status == 307 and "redirect not followed" in (result.error or "")
        assert internal_hits == []
        d = _dispatcher(["127.0.0.1/32"])
        direct = await d.attempt(f"http://127.0.0.2:{inner_port}/x", "msg_2", "whsec_" + "A" * 32, b"{}")
        await d.close()
        assert not direct.ok and "refused" in (direct.error or "") and internal_hits == []
    finally:
        await outer_runner.cleanup()
        await inner_runner.cleanup()


# -- constant-time comparisons --------------------------------------------------------------------------
_SECRETISH = re.compile(r"token|secret|signature|api_key|password|digest|bearer", re.I)
_SOURCES = [p for d in ("controlplane", "adapters", "dataplane", "probes") for p in (ROOT / d).rglob("*.py")]


def _names(node: ast.AST) -> str:
    return " ".join(
        n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node) if isinstance(n, ast.Name | ast.Attribute)
    )


def test_tokens_and_signatures_are_compared_in_constant_time() -> None:
    offenders: list[str] = []
    for path in _SOURCES:
        if "/sim/" in str(path):
            continue  # the simulator stands in for providers; it guards nothing of ours
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Constant) and s.value in (None, "", 0) for s in sides):
                    continue  # presence checks, not comparisons of a secret with a guess
                if any(
                    isinstance(s, ast.Constant) and isinstance(s.value, str) and s.value.lower() in ("bearer", "basic")
                    for s in sides
                ):
                    continue  # the auth scheme word is public
                text = " ".join(_names(s) for s in sides)
                if _SECRETISH.search(text) and not re.search(r"scope|kind|type|scheme|count|len|name", text, re.I):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == [], "compare secrets with hmac.compare_digest:\n" + "\n".join(offenders)
    users = {p.relative_to(ROOT).as_posix() for p in _SOURCES if "compare_digest" in p.read_text()}
    # every place that checks a presented credential uses it: API tokens, /metrics, the status page, signatures,
    # client keys (the data plane's gate calls controlplane/keys/tokens.py `matches`)
    assert {
        "controlplane/keys/tokens.py",
        "controlplane/api/auth.py",
        "controlplane/api/metrics_endpoint.py",
        "controlplane/statuspage.py",
        "controlplane/webhooks/signing.py",
    } <= users, users
