"""A real Prometheus scrapes a running Turnout through a failover; every dashboard and alert expression must
parse and return data."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.dashboards.exprs import PROMETHEUS, concrete, dashboard_exprs, rule_exprs
from tests.dashboards.harness import Traffic, running_turnout
from tests.support import free_port, require_integration

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEADLINE_S = 60.0


def _test_rules(tmp_path: Path) -> Path:
    """alerts.yml as shipped, with rule groups evaluated every second instead of every 30 s."""
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))
    for group in doc["groups"]:
        group["interval"] = "1s"
    path = tmp_path / "alerts.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@contextlib.contextmanager
def _prometheus(tmp_path: Path, scrape: str) -> Iterator[str]:
    binary = shutil.which("prometheus")
    require_integration(binary is not None, "prometheus not installed (Debian package prometheus)")
    rules = _test_rules(tmp_path)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
                "rule_files": [str(rules)],
                "scrape_configs": [{"job_name": "turnout", "static_configs": [{"targets": [scrape]}]}],
            }
        ),
        encoding="utf-8",
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def _query(session: aiohttp.ClientSession, base: str, expr: str) -> dict[str, Any]:
    async with session.get(f"{base}/api/v1/query", params={"query": expr}) as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def _ready(session: aiohttp.ClientSession, base: str, loop_deadline: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < loop_deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{base}/-/ready") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.2)  # polling a bounded readiness check
    pytest.fail("prometheus did not become ready")


async def test_every_dashboard_and_alert_expression_returns_data(tmp_path: Path) -> None:
    exprs = [(w, concrete(e)) for w, e in dashboard_exprs()] + rule_exprs()
    assert len(exprs) > 40
    async with running_turnout(tmp_path) as turnout:
        await turnout.failover_scenario()
        await turnout.webhook_backlog()
        traffic = asyncio.create_task(Traffic(turnout).run())
        try:
            with _prometheus(tmp_path, turnout.url.removeprefix("http://")) as prom:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + DEADLINE_S
                    await _ready(session, prom, deadline)
                    pending = dict(exprs)
                    errors: dict[str, str] = {}
                    while pending and loop.time() < deadline:
                        for where, expr in list(pending.items()):
                            body = await _query(session, prom, expr)
                            if body.get("status") != "success":
                                errors[where] = f"{body.get('errorType')}: {body.get('error')} in {expr}"
                                del pending[where]
                            elif body["data"]["result"]:
                                del pending[where]
                        if pending:
                            await asyncio.sleep(0.5)  # scrapes and rule evaluations happen every second
                    assert not errors, "expressions Prometheus rejects:\n" + "\n".join(
                        f"{k}: {v}" for k, v in errors.items()
                    )
                    assert not pending, "expressions with no data after the failover:\n" + "\n".join(
                        f"{k}: {v}" for k, v in pending.items()
                    )

                    # the alerts the failover should raise become pending (or firing) in the real Prometheus
                    expected = {
                        "TurnoutRouteExhausted",
                        "TurnoutRoutePanic",
                        "TurnoutTargetWithdrawn",
                        "TurnoutProviderDown",
                        "TurnoutErrorBudgetBurnFast",
                        "TurnoutErrorBudgetBurnSlow",
                        "TurnoutWebhookBacklog",
                        "TurnoutProbeSchedulerLag",
                    }
                    alerts: set[str] = set()
                    while not expected <= alerts and loop.time() < deadline:
                        async with session.get(f"{prom}/api/v1/alerts") as resp:
                            alerts = {a["labels"]["alertname"] for a in (await resp.json())["data"]["alerts"]}
                        if not expected <= alerts:
                            await asyncio.sleep(0.5)  # the next rule evaluation is at most a second away
                    assert expected <= alerts, f"not raised: {sorted(expected - alerts)}"

                    # and the state timeline reads the withdrawn code for deepseek
                    timeline = next(e for w, e in dashboard_exprs() if "state timeline" in w)
                    body = await _query(session, prom, concrete(timeline))
                    codes = {
                        r["metric"]["provider"] + "/" + r["metric"]["model"]: float(r["value"][1])
                        for r in body["data"]["result"]
                    }
                    assert codes["deepseek/deepseek-chat"] == 3 and codes["openai/gpt-4o"] == 2
        finally:
            traffic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await traffic


def test_concrete_substitutes_grafana_variables() -> None:
    e = concrete('sum(rate(x{provider=~"$provider", route=~"$route"}[$__rate_interval])) + avg_over_time(y[$__range])')
    assert "$" not in e and re.search(r"\[30s\]", e) and "[5m]" in e
    assert concrete("label_values(turnout_target_up, provider)") == "turnout_target_up"
