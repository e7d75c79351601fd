"""`turnout status` / `turnout events` against a served status API (real HTTP on a free loopback port)."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controlplane.cli import main
from tests.cli.stub_api import StubApi, sample_table
from tests.support import free_port, until


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StubApi]:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("TURNOUT_URL", raising=False)
    stub = StubApi()
    await stub.start(free_port())
    yield stub
    await stub.stop()


def _settle(done: asyncio.Future[int], rc: int, exc: BaseException | None) -> None:
    if done.done():
        return
    if exc is not None:
        done.set_exception(exc)
    else:
        done.set_result(rc)


def _parked_after(api: StubApi, version: int) -> bool:
    return version in api.parked_after


async def run_cli(*argv: str) -> int:
    """Run the synchronous CLI (urllib) off the loop that serves the API.

    A daemon thread rather than `to_thread`: if a test fails while the CLI still follows, the process
    can still exit instead of waiting on a thread that never ends."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    def run() -> None:
        try:
            rc = main(list(argv))
        except BaseException as exc:  # handed to the test
            loop.call_soon_threadsafe(_settle, done, 0, exc)  # passed now: `exc` is unbound after the block
        else:
            loop.call_soon_threadsafe(_settle, done, rc, None)

    threading.Thread(target=run, daemon=True).start()
    return await done


async def test_status_prints_every_route_with_state_and_reason(
    api: StubApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_cli("status", "--url", api.url) == 0
    out = capsys.readouterr().out
    assert "route frontier" in out and "route cheap" in out
    assert "openai/gpt-5.5" in out and "withdrawn" in out
    assert "region_blocked (403)" in out  # the reason is shown, not just the state
    assert "v1" in out


async def test_status_json_is_the_api_payload_filtered_by_route(
    api: StubApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_cli("status", "--url", api.url, "--json", "--route", "frontier") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == 1 and list(doc["routes"]) == ["frontier"]
    assert doc["routes"]["frontier"]["primary"] == "openai/gpt-5.5"
    assert [e["state"] for e in doc["routes"]["frontier"]["entries"]] == ["closed", "closed", "withdrawn"]


async def test_status_unknown_route_names_the_known_ones(api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_cli("status", "--url", api.url, "--route", "nope") == 1
    err = capsys.readouterr().err
    assert "unknown route 'nope'" in err and "cheap, frontier" in err


async def test_status_unreachable_control_plane_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_cli("status", "--url", f"http://127.0.0.1:{free_port()}") == 1
    assert "cannot reach the control plane" in capsys.readouterr().err


async def test_status_watch_long_polls_and_prints_each_new_version(
    api: StubApi, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = asyncio.create_task(run_cli("status", "--url", api.url, "--watch", "--json", "--count", "2"))
    for version, primary in ((2, "anthropic/claude-sonnet-4"), (3, "openai/gpt-5.5")):
        await until(functools.partial(_parked_after, api, version - 1))  # the CLI has seen v-1 and waits for newer
        api.publish(sample_table(version, primary))
    assert await asyncio.wait_for(cli, 10) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [d["version"] for d in lines] == [1, 2, 3]
    assert lines[1]["routes"]["frontier"]["primary"] == "anthropic/claude-sonnet-4"


async def test_events_lists_history_filtered_by_type(api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.add_event("target.withdrawn", "deepseek/deepseek-chat", old="closed", new="withdrawn", reason="region_blocked")
    api.add_event("route.primary_changed", "frontier", **{"from": "openai/gpt-5.5", "to": "anthropic/claude-sonnet-4"})
    assert await run_cli("events", "--url", api.url) == 0
    out = capsys.readouterr().out
    assert out.index("target.withdrawn") < out.index("route.primary_changed")
    assert "closed → withdrawn" in out and "openai/gpt-5.5 → anthropic/claude-sonnet-4" in out
    assert await run_cli("events", "--url", api.url, "--type", "route.primary_changed", "--json") == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["type"] for d in docs] == ["route.primary_changed"]


async def test_events_follow_prints_only_new_events(api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.add_event("target.state_changed", "openai/gpt-5.5", old="closed", new="open")
    cli = asyncio.create_task(
        run_cli("events", "--url", api.url, "--follow", "--json", "--count", "1", "--interval", "0.05")
    )
    await until(lambda: "target.state_changed" in capsys.readouterr().out)  # history printed; now polling
    api.add_event("target.withdrawn", "deepseek/deepseek-chat", old="closed", new="withdrawn")
    assert await asyncio.wait_for(cli, 10) == 0
    ids = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert ids == [2]  # only the new one; history (id 1) was printed before


# -- against the real control app --------------------------------------------------------------------


@pytest.mark.integration
async def test_status_and_events_show_a_withdrawal_from_the_real_control_app(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiohttp import web

    from controlplane.api.app import build_control_app
    from controlplane.config_loader import parse_config
    from controlplane.control_plane import ControlPlane
    from controlplane.domain import ErrorClass, Observation, Source

    monkeypatch.setenv("COLUMNS", "200")
    cfg = parse_config(f"""
database: {{url: "sqlite:///{tmp_path / "t.db"}"}}
providers:
  - {{id: oa, adapter: openai, base_url: "http://127.0.0.1:1/v1", models: [{{name: m}}]}}
  - {{id: an, adapter: anthropic, base_url: "http://127.0.0.1:1", models: [{{name: c}}]}}
routes:
  - {{name: frontier, targets: [oa/m, an/c]}}
""")
    rt = ControlPlane(cfg, probes=False, webhooks=False, fire=False)
    await rt.start()
    runner = web.AppRunner(build_control_app(rt), handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    try:
        primary = rt.table_source.current().routes["frontier"].primary
        assert primary is not None
        rt.sink.submit(
            Observation.failure(
                primary.target,
                ErrorClass.REGION_BLOCKED,
                kind="completion",
                at=rt.clock.wall(),
                source=Source.LIVE,
                status=403,
            )
        )
        await rt.sink.flush()

        assert await run_cli("status", "--url", url, "--route", "frontier") == 0
        out = capsys.readouterr().out
        assert "withdrawn" in out and primary.target in out

        assert await run_cli("events", "--url", url, "--type", "target.withdrawn") == 0
        out = capsys.readouterr().out
        assert "target.withdrawn" in out and primary.target in out and "withdrawn" in out

        assert await run_cli("events", "--url", url, "--json") == 0
        types = [json.loads(line)["type"] for line in capsys.readouterr().out.splitlines()]
        assert "route.primary_changed" in types
    finally:
        await runner.cleanup()
        await rt.stop()


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_table_keeps_names_numbers_and_reasons_readable_at_any_width(width: int) -> None:
    from rich.console import Console

    from controlplane.commands.status_cmd import table_renderable

    console = Console(width=width, record=True, color_system=None)
    console.print(table_renderable(sample_table(1).to_dict(), "frontier", width=width))
    text = console.export_text()
    for name in ("openai/gpt-5.5", "anthropic/claude-sonnet-4", "deepseek/deepseek-chat", "120ms"):
        assert name in text, text  # never cut or folded
    assert "region_blocked" in text.replace("\n", "")
    assert ("p95" in text) == (width >= 140)  # secondary columns go first when space is short
