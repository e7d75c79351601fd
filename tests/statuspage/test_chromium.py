"""The status page in a real headless Chromium, served by a running Turnout after a failover: it renders, and the
withdrawn target shows in its own colour. `make screenshots` runs this with TURNOUT_SCREENSHOT_DIR=screenshots."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from controlplane.domain import State
from controlplane.statuspage import STATE_COLOURS
from tests.dashboards.harness import running_turnout
from tests.statuspage.png import colours
from tests.support import require_integration

pytestmark = [pytest.mark.integration]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


async def _run_chromium(binary: str, profile: Path, *args: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, f"chromium exited {proc.returncode}"
    return out


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


async def test_status_page_renders_in_chromium_with_withdrawn_in_its_own_colour(tmp_path: Path) -> None:
    binary = _chromium()
    require_integration(binary is not None, "chromium not installed (Debian package chromium)")
    assert binary is not None
    shot = tmp_path / "statuspage.png"
    async with running_turnout(tmp_path) as turnout:
        await turnout.failover_scenario()
        # the DOM as the browser built it (no JavaScript needed: the page is complete as served)
        dom = (await _run_chromium(binary, tmp_path / "p1", "--dump-dom", f"{turnout.url}/")).decode()
        await _run_chromium(
            binary, tmp_path / "p2", "--window-size=1100,900", f"--screenshot={shot}", f"{turnout.url}/"
        )
    assert "Turnout status" in dom
    assert 'data-target="deepseek/deepseek-chat" data-state="withdrawn"' in dom
    assert 'data-target="openai/gpt-4o" data-state="open"' in dom
    assert "target.withdrawn" in dom and "route.exhausted" in dom
    # a route with no admissible target is down (major) on the banner, as in the Statuspage export and metrics
    assert '<div class="banner major" id="overall">' in dom and "Route down:" in dom

    seen = colours(shot)
    withdrawn = _rgb(STATE_COLOURS[State.WITHDRAWN])
    # The legend paints one badge of every state; no target is drained here, so its colour is the legend's
    # share alone. The withdrawn target's rows (badge and row edge, in two routes) must add well beyond that.
    legend_only = seen[_rgb(STATE_COLOURS[State.DRAINED])]
    assert legend_only > 100
    assert seen[withdrawn] > 2 * legend_only, "the withdrawn target is not painted in its own colour"
    for other in (State.OPEN, State.CLOSED):
        assert seen[_rgb(STATE_COLOURS[other])] > 200 and _rgb(STATE_COLOURS[other]) != withdrawn

    target_dir = os.environ.get("TURNOUT_SCREENSHOT_DIR")
    if target_dir:  # make screenshots
        Path(target_dir).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(target_dir) / "statuspage.png")
