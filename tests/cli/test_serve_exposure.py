"""The safe default: `turnout serve` will not put a keyless data plane beyond loopback unless told to."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from controlplane.cli import main
from controlplane.commands.serve_cmd import exposure_problem, is_loopback, serve
from controlplane.config_loader import load_config
from tests.support import free_port

pytestmark = pytest.mark.integration


def _write(tmp_path: Path, data_host: str, auth_data: str = "") -> Path:
    path = tmp_path / "turnout.yaml"
    path.write_text(
        f"""
server:
  data: {{host: "{data_host}", port: {free_port()}}}
  control: {{host: 127.0.0.1, port: {free_port()}}}
database: {{url: "sqlite:///{tmp_path}/t.db"}}
auth: {{data: {{{auth_data}}}}}
providers: [{{id: oa, adapter: openai, base_url: "http://127.0.0.1:9", models: [{{name: gpt-x}}]}}]
routes: [{{name: main, targets: [oa/gpt-x]}}]

""",
        encoding="utf-8",
    )
    return path


async def test_serve_refuses_a_keyless_data_plane_beyond_loopback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path, "0.0.0.0")
    cfg = load_config(str(path))
    code = await asyncio.wait_for(serve(cfg, str(path), "all"), timeout=30)
    assert code == 2
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "server.data.host: 0.0.0.0 is not a loopback address" in message
    assert "turnout keys -c" in message and "auth.data.anonymous: true" in message and str(path) in message


def test_what_lets_the_data_plane_bind_beyond_loopback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exposed = load_config(str(_write(tmp_path, "0.0.0.0")))
    assert exposure_problem(exposed, no_keys=True) is not None
    assert exposure_problem(exposed, no_keys=False) is None  # a key exists: every request needs one
    assert exposure_problem(load_config(str(_write(tmp_path, "0.0.0.0", "anonymous: true"))), no_keys=True) is None
    assert exposure_problem(load_config(str(_write(tmp_path, "0.0.0.0", "require_key: true"))), no_keys=True) is None
    assert exposure_problem(load_config(str(_write(tmp_path, "127.0.0.1"))), no_keys=True) is None
    # The first key, made on the store before any server runs (the way out the refusal names):
    assert main(["keys", "-c", str(_write(tmp_path, "0.0.0.0")), "create", "--name", "first"]) == 0
    assert "tk_" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("turnout.internal", False)],
)  # fmt: skip
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
