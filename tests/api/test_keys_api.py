"""Client keys over the control API (admin only) and `turnout keys` through it and straight on the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from controlplane.cli import main
from controlplane.clock import SystemClock
from tests.api.conftest import ADMIN, READ
from tests.api.fakes import ADMIN_TOKEN, FakeRuntime
from tests.api.threaded import serve_in_thread

Client = TestClient[web.Request, web.Application]


async def test_create_shows_the_key_once_then_never(client: Client) -> None:
    body = {"name": "team-a", "routes": ["frontier"], "rpm": 600, "tpm": 200000, "budget_usd": 200,
            "budget_period": "month", "expires_at": "2027-01-01"}  # fmt: skip
    r = await client.post("/api/v1/keys", json=body, headers=ADMIN)
    assert r.status == 201
    created = await r.json()
    key, key_id = created["key"], created["id"]
    assert key.startswith(f"tk_{key_id}_") and r.headers["Location"] == f"/api/v1/keys/{key_id}"
    assert created["expires_at"] == "2027-01-01T00:00:00Z" and created["routes"] == ["frontier"]
    for path in ("/api/v1/keys", f"/api/v1/keys/{key_id}", "/api/v1/keys/ring"):
        r = await client.get(path, headers=ADMIN)
        assert r.status == 200, path
        assert key not in await r.text(), path
    shown = await (await client.get(f"/api/v1/keys/{key_id}", headers=ADMIN)).json()
    assert shown["use"]["requests"] == 0 and shown["use"]["period"] == "month" and "key" not in shown


async def test_every_key_operation_needs_the_admin_token(client: Client) -> None:
    ops = [("POST", "/api/v1/keys"), ("GET", "/api/v1/keys"), ("GET", "/api/v1/keys/ring"),
           ("GET", "/api/v1/keys/abcd1234"), ("DELETE", "/api/v1/keys/abcd1234"),
           ("POST", "/api/v1/keys/abcd1234/rotate")]  # fmt: skip
    for method, path in ops:
        assert (await client.request(method, path, json={"name": "x"})).status == 401, path
        assert (await client.request(method, path, json={"name": "x"}, headers=READ)).status == 403, path


async def test_bad_fields_are_named(client: Client) -> None:
    cases = [
        ({}, "name"),
        ({"name": "a", "routes": ["nope"]}, "routes"),
        ({"name": "a", "routes": []}, "routes"),
        ({"name": "a", "rpm": 0}, "rpm"),
        ({"name": "a", "budget_period": "year"}, "budget_period"),
        ({"name": "a", "expires_at": "2001-01-01"}, "expires_at"),
        ({"name": "a", "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        r = await client.post("/api/v1/keys", json=body, headers=ADMIN)
        assert r.status == 422, body
        assert (await r.json())["error"]["field"] == field, body


async def test_revoke_and_rotate(client: Client) -> None:
    created = await (await client.post("/api/v1/keys", json={"name": "a"}, headers=ADMIN)).json()
    key_id = created["id"]
    rotated = await (await client.post(f"/api/v1/keys/{key_id}/rotate", headers=ADMIN)).json()
    assert rotated["id"] == key_id and rotated["key"] != created["key"] and rotated["rotated_at"]
    r = await client.delete(f"/api/v1/keys/{key_id}", headers=ADMIN)
    assert r.status == 200 and (await r.json())["state"] == "revoked"
    assert (await client.post(f"/api/v1/keys/{key_id}/rotate", headers=ADMIN)).status == 409
    assert (await client.delete("/api/v1/keys/zzzzzzzz", headers=ADMIN)).status == 404
    ring = await (await client.get("/api/v1/keys/ring", headers=ADMIN)).json()
    assert ring == {"any_keys": True, "keys": []}


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with serve_in_thread(FakeRuntime(tmp_path, SystemClock())) as u:
        yield u


@pytest.mark.integration
def test_cli_round_trip_through_the_api(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["keys", "--url", url, "--token", ADMIN_TOKEN]
    assert main([*base, "create", "--name", "team-a", "--routes", "frontier,cheap", "--rpm", "600",
                 "--budget-usd", "200", "--budget-period", "week", "--expires", "2027-01-01"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    key = next(w for w in out.split() if w.startswith("tk_"))
    key_id = key.split("_")[1]
    assert "shown once" in out
    assert main([*base, "list"]) == 0
    listed = capsys.readouterr().out
    assert key_id in listed and key not in listed and "600 rpm" in listed
    assert main([*base, "show", key_id]) == 0
    shown = capsys.readouterr().out
    assert "this week" in shown and "0 requests" in shown and key not in shown
    assert main([*base, "rotate", key_id]) == 0
    assert "tk_" in capsys.readouterr().out
    assert main([*base, "revoke", key_id]) == 0
    assert main([*base, "show", key_id]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main([*base, "show", "zzzzzzzz"]) == 1
    assert "404" in capsys.readouterr().err


def test_cli_works_on_the_store_without_a_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "turnout.yaml"
    cfg.write_text(
        f'database: {{url: "sqlite:///{tmp_path}/t.db"}}\n'
        "providers: [{id: oa, adapter: openai, base_url: 'http://127.0.0.1:9', models: [{name: gpt-x}]}]\n"
        "routes: [{name: main, targets: [oa/gpt-x]}]\n",
        encoding="utf-8",
    )
    assert main(["keys", "-c", str(cfg), "create", "--name", "first"]) == 0
    assert "tk_" in capsys.readouterr().out
    assert main(["keys", "-c", str(cfg), "--json", "list"]) == 0
    assert '"first"' in capsys.readouterr().out
    assert main(["keys", "-c", str(cfg), "create", "--name", "x", "--routes", "nope"]) == 1
    assert "unknown route 'nope'" in capsys.readouterr().err
