"""Every command the README and the quickstart show works as written (or, for long-running ones, parses):
`make` targets exist, `turnout …` lines parse and the one-shot ones run against a real control app, files
they name exist, API paths they mention are served, links resolve, and the Python examples run."""

from __future__ import annotations

import asyncio
import re
import shlex
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from controlplane.cli import build_parser, main
from controlplane.config_loader import load_config
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *(ROOT / "docs" / n for n in ("quickstart.md", "concepts.md", "comparison.md"))]
LONG_RUNNING = {"serve", "sim", "demo"}  # start servers; parsed here, run by their own tests
ENV = {
    k: "test-value"
    for k in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "DEEPSEEK_API_KEY",
        "MISTRAL_API_KEY",
        "OPENROUTER_API_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "GOOGLE_CLOUD_PROJECT",
        "AZURE_OPENAI_RESOURCE",
        "AZURE_OPENAI_API_KEY",
        "TURNOUT_ADMIN_TOKEN",
    )
}


@dataclass(frozen=True)
class Command:
    page: str
    argv: list[str]

    def __str__(self) -> str:
        return f"{self.page}: {shlex.join(self.argv)}"


def _blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def _commands() -> list[Command]:
    out: list[Command] = []
    for page in PAGES:
        for block in _blocks(page, "sh"):
            for line in block.splitlines():
                line = line.split(" | ")[0]  # a pipeline: the part we own is the first command
                argv = shlex.split(line, comments=True)
                if argv:
                    out.append(Command(page.name, argv))
    return out


COMMANDS = _commands()


def _turnout(cmd: Command) -> list[str] | None:
    head = cmd.argv[0]
    return cmd.argv[1:] if head in ("turnout", ".venv/bin/turnout") else None


def test_the_readme_shows_the_two_quickstart_commands() -> None:
    readme = [c.argv for c in COMMANDS if c.page == "README.md"]
    assert readme[:2] == [["make", "demo"], ["make", "test"]]


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c.argv[0] == "make"], ids=str)
def test_make_targets_exist(cmd: Command) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in (a for a in cmd.argv[1:] if "=" not in a):
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), f"{cmd}: no make target {target!r}"


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if _turnout(c) is not None], ids=str)
def test_turnout_commands_parse_and_name_existing_files(cmd: Command, capsys: pytest.CaptureFixture[str]) -> None:
    args = _turnout(cmd)
    assert args is not None
    try:
        build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"{cmd}: the CLI rejects it: {capsys.readouterr().err}")
    for a in args:
        if a.startswith("examples/"):
            assert (ROOT / a).is_file(), f"{cmd}: {a} does not exist"


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c.argv[0] == "cp"], ids=str)
def test_files_the_pages_copy_exist(cmd: Command) -> None:
    assert (ROOT / cmd.argv[1]).is_file(), f"{cmd}: {cmd.argv[1]} does not exist"


def test_config_check_commands_succeed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    checks = [
        c for c in COMMANDS if (_turnout(c) or [])[:2] == ["config", "check"] and c.argv[-1].startswith("examples/")
    ]
    assert checks, "the README shows `turnout config check` on an example"
    for cmd in checks:
        args = _turnout(cmd)
        assert args is not None
        assert main(args) == 0, f"{cmd}: {capsys.readouterr()}"
        assert "config error" not in capsys.readouterr().err


def test_relative_links_resolve() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+://", target):
                continue
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_python_examples_compile() -> None:
    for page in PAGES:
        for i, block in enumerate(_blocks(page, "python")):
            compile(block, f"{page.name}[python {i}]", "exec")


# -- against a real control plane -------------------------------------------------------------------


@pytest.fixture
async def control(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """`examples/turnout-sim.yaml` served by the real control app (no probes: nothing outside is called)."""
    from controlplane.api.app import build_control_app
    from controlplane.control_plane import ControlPlane

    monkeypatch.setenv("COLUMNS", "200")
    cfg = load_config(ROOT / "examples" / "turnout-sim.yaml")
    cfg = cfg.model_copy(update={"database": cfg.database.model_copy(update={"url": f"sqlite:///{tmp_path / 't.db'}"})})
    rt = ControlPlane(cfg, probes=False, webhooks=False, fire=False)
    await rt.start()
    runner = web.AppRunner(build_control_app(rt), handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await rt.stop()


def _one_shot(cmd: Command) -> bool:
    args = _turnout(cmd) or []
    return bool(args) and args[0] in ("status", "events") and not {"--watch", "-w", "--follow", "-f"} & set(args)


async def _run(argv: list[str]) -> int:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    def run() -> None:
        rc = main(argv)
        loop.call_soon_threadsafe(done.set_result, rc)

    threading.Thread(target=run, daemon=True).start()  # the CLI is synchronous; the app runs on this loop
    return await asyncio.wait_for(done, 30)


@pytest.mark.integration
async def test_status_and_events_commands_run_against_a_control_app(
    control: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shots = [c for c in COMMANDS if _one_shot(c)]
    assert shots, "the README shows turnout status / events"
    for cmd in shots:
        args = _turnout(cmd)
        assert args is not None
        assert await _run([*args, "--url", control]) == 0, f"{cmd}: {capsys.readouterr().err}"
        out = capsys.readouterr().out
        assert "frontier" in out or args[0] == "events", f"{cmd}: {out}"


def _api_paths(text: str) -> Iterator[str]:
    for m in re.finditer(r"`(?:GET|POST|DELETE) (/[^` ?]+)", text):
        yield m.group(1)
    for m in re.finditer(r"curl [^\n]*?https?://[^/\s]+(/[^\s'\"?]+)", text):
        yield m.group(1)


def _matches(path: str, template: str) -> bool:
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
    return re.fullmatch(pattern, path) is not None or path == template


@pytest.mark.integration
async def test_api_paths_in_the_readme_are_served(control: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(f"{control}/openapi.json") as r:
        doc: dict[str, Any] = await r.json()
    templates = list(doc["paths"])
    async with aiohttp.ClientSession() as s:
        for page in PAGES:
            for path in _api_paths(page.read_text(encoding="utf-8")):
                if path.startswith("/v1/") or any(_matches(path, t) for t in templates):
                    continue  # documented in the OpenAPI document (or a data-plane path: tests/dataplane)
                async with s.get(f"{control}{path}") as r:  # outside the API document: /metrics, the status page
                    assert r.status != 404, f"{page.name}: {path} is not served by the control plane"


async def test_readme_webhook_receiver_accepts_signed_and_refuses_forged_deliveries() -> None:
    from controlplane.webhooks.signing import generate_secret, signed_headers

    (source,) = [b for b in _blocks(ROOT / "README.md", "python") if "standardwebhooks" in b]
    secret = generate_secret()
    scope: dict[str, Any] = {}
    exec(source.replace('"whsec_..."', repr(secret)), scope)
    runner = web.AppRunner(scope["app"], handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    body = (
        b'{"type":"route.primary_changed","subject":"frontier","data":{"from":"a/x","to":"b/y","reason":"withdrawn"}}'
    )
    ts = int(time.time())
    try:
        async with aiohttp.ClientSession() as s:
            good = signed_headers(secret, "msg_1", ts, body)
            async with s.post(f"http://127.0.0.1:{port}/turnout", data=body, headers=good) as r:
                assert r.status == 204
            async with s.post(f"http://127.0.0.1:{port}/turnout", data=body, headers=good) as r:
                assert r.status == 204  # a duplicate is acknowledged and dropped
            forged = signed_headers(generate_secret(), "msg_2", ts, body)
            async with s.post(f"http://127.0.0.1:{port}/turnout", data=body, headers=forged) as r:
                assert r.status == 401
    finally:
        await runner.cleanup()
