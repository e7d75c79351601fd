"""The status page in a real headless Chromium, served by a running Turnout after a failover: it renders, and the
withdrawn target shows in its own colour. `make screenshots` runs this with TURNOUT_SCREENSHOT_DIR=screenshots."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import aiohttp
import pytest

from controlplane.domain import State
from controlplane.statuspage import STATE_COLOURS
from tests.dashboards.harness import running_turnout
from tests.statuspage.png import colours
from tests.support import require_integration

pytestmark = [pytest.mark.integration]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


async def _run_chromium(binary: str, profile: Path, *args: str, nice: bool = False) -> bytes:
    # nice: below the demo it photographs, so the browser's start-up does not slow the simulated providers
    # (on a loaded 2-core machine that alone opens breakers on slow calls)
    prefix = ["nice", "-n", "19"] if nice and shutil.which("nice") else []
    proc = await asyncio.create_subprocess_exec(
        *prefix,
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


# Story seconds (controlplane/demo/story.py): before the first fault, while each of the three faults holds
# (after Turnout has had time to act), and after the calm chapter.
MOMENTS = ((10.0, "1-before"), (24.0, "2-latency"), (44.0, "3-storm"), (64.0, "4-withdrawal"), (82.0, "5-after"))


@pytest.mark.slow
async def test_status_page_before_during_and_after_the_demo_faults(tmp_path: Path) -> None:
    """The demo's story at speed 2 with the page photographed at each moment: the banner's severity follows the
    incident, the withdrawn target shows withdrawn, and the figures move while the story runs."""
    binary = _chromium()
    require_integration(binary is not None, "chromium not installed (Debian package chromium)")
    assert binary is not None
    from rich.console import Console

    from controlplane.demo import DemoOptions, run_demo

    doms: dict[str, str] = {}
    shots: dict[str, Path] = {}

    async def photograph(name: str, control_url: str) -> None:
        # the HTML as served at this moment (the page needs no JavaScript), then the browser's picture of it
        async with aiohttp.ClientSession() as http, http.get(f"{control_url}/") as resp:
            doms[name] = await resp.text()
        shot = tmp_path / f"statuspage-{name}.png"
        await _run_chromium(
            binary,
            tmp_path / f"s-{name}",
            "--window-size=1100,1500",
            f"--screenshot={shot}",
            f"{control_url}/",
            nice=True,
        )
        shots[name] = shot

    console = Console(file=open(os.devnull, "w"), width=200, force_terminal=False)
    async with asyncio.timeout(240):
        await run_demo(DemoOptions(speed=2, plain=True, moments=MOMENTS, on_moment=photograph), console)
    assert sorted(doms) == [name for _, name in MOMENTS]
    target_dir = os.environ.get("TURNOUT_SCREENSHOT_DIR")
    if target_dir:  # make screenshots (copied before the checks, so a failure can be looked at)
        Path(target_dir).mkdir(parents=True, exist_ok=True)
        for name, shot in shots.items():
            shutil.copyfile(shot, Path(target_dir) / f"statuspage-{name}.png")

    def banner(dom: str) -> str:
        start = dom.index('<div class="banner ') + len('<div class="banner ')
        return dom[start : dom.index('"', start)]

    assert banner(doms["1-before"]) != "major" and 'data-state="withdrawn"' not in doms["1-before"]
    assert 'data-state="withdrawn"' in doms["4-withdrawal"], "the withdrawal chapter's victim is not shown withdrawn"
    # after the calm the model stays out; a recheck may have it on trial (half_open) at the moment of the picture
    assert re.search(r'data-state="(withdrawn|half_open)"', doms["5-after"]), "the withdrawn model came back"
    withdrawn = [n for n in ("4-withdrawal", "5-after") if 'data-state="withdrawn"' in doms[n]]
    for name in withdrawn:  # a withdrawn model with the route serving on the rest: a partial outage
        assert banner(doms[name]) in ("partial", "major")
    for name in withdrawn:  # no capacity claim for a withdrawn target: its headroom cell is empty
        row = doms[name][doms[name].index('data-state="withdrawn"') :]
        row = row[: row.index("</tr>")]
        assert "%</td>" not in row, row
    for name, dom in doms.items():  # the newest bar of a serving target is never painted "down"
        for row in re.findall(r'data-state="(?:closed|half_open)">(.*?)</tr>', dom, re.S):
            bars = re.findall(r'class="bar ([a-z_-]+)"', row)
            assert bars and bars[-1] not in ("bad", "now-open", "now-withdrawn"), (name, bars[-1])
    figures = {name: re.findall(r'class="num">\s*([0-9.]+ s)', dom) for name, dom in doms.items()}
    assert len({tuple(f) for f in figures.values()}) > 1, "the page's figures never moved"
    for dom in doms.values():  # every row's latency comes from serving signals, never a listing's round trip
        sources = re.findall(r'over how many calls">(\w+), n=', dom)
        assert sources and set(sources) <= {"live", "completion"}, sources
