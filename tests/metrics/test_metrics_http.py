"""GET /metrics serves the runtime's registry in the Prometheus text format that promtool accepts."""

from __future__ import annotations

import shutil
import subprocess

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from controlplane.api import metrics_endpoint as metrics_http
from controlplane.domain import ErrorClass, Observation
from controlplane.metrics import Metrics, observe_observation, observe_table
from tests.statuspage.sample import NOW, sample_table
from tests.support import require_integration


def _fed() -> Metrics:
    m = Metrics()
    observe_table(m, sample_table())
    observe_observation(m, Observation.success("openai/gpt-4o", kind="completion", at=NOW, latency_s=0.3, ttft_s=0.1))
    observe_observation(
        m, Observation.failure("mistral/mistral-large", ErrorClass.SERVER_ERROR, kind="completion", at=NOW)
    )
    m.dataplane_requests_total.labels("frontier", "ok").inc()
    m.webhook_queue_depth.set(3)
    m.scheduler_lag_seconds.observe(0.02)
    return m


async def test_metrics_endpoint_serves_the_registry() -> None:
    app = web.Application()
    metrics_http.install(app, _fed())
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        body = await resp.text()
    assert "turnout_table_version 7.0" in body
    assert 'turnout_target_state{model="deepseek-chat",provider="deepseek",state="withdrawn"} 1.0' in body
    assert 'turnout_dataplane_requests_total{outcome="ok",route="frontier"} 1.0' in body


def test_promtool_check_metrics_accepts_the_exposition() -> None:
    promtool = shutil.which("promtool")
    require_integration(promtool is not None, "promtool not installed (Debian package prometheus)")
    from controlplane.metrics import render

    proc = subprocess.run([str(promtool), "check", "metrics"], input=render(_fed()), capture_output=True, timeout=60)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode()


async def test_private_reads_need_a_bearer_token_for_metrics() -> None:
    from controlplane.config_loader import parse_config

    cfg = parse_config(
        "providers: [{id: a, adapter: openai, base_url: 'http://127.0.0.1:9/v1', models: [{name: m}]}]\n"
        "auth: {public_read: false, tokens: [{token: scrape-token, scope: read}]}\n",
        env={},
    )
    app = web.Application()
    metrics_http.install(app, _fed(), cfg.auth)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/metrics")).status == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer nope"})).status == 401
        ok = await client.get("/metrics", headers={"Authorization": "Bearer scrape-token"})
        assert ok.status == 200 and "turnout_table_version" in await ok.text()


async def test_a_data_replica_serves_metrics_on_its_listener_with_the_same_auth() -> None:
    import aiohttp

    from dataplane.proxy import build_data_app
    from tests.dataplane.helpers import Rt, StaticTables, make_table, parse
    from tests.support import serve_app

    cfg = parse(
        "providers: [{id: a, adapter: openai, base_url: 'http://127.0.0.1:9/v1', models: [{name: m}]}]\n"
        "auth: {public_read: false, tokens: [{token: scrape-token, scope: read}]}\n"
    )
    rt = Rt(cfg, StaticTables(make_table(cfg)), metrics=_fed())
    runner, port = await serve_app(build_data_app(rt, serve_metrics=True))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
            async with s.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer scrape-token"}) as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                assert "turnout_table_version 7.0" in await r.text()
    finally:
        await runner.cleanup()
    plain, plain_port = await serve_app(build_data_app(rt))  # an all-in-one data plane: metrics are on the control port
    try:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{plain_port}/metrics") as r:
            assert r.status == 404
    finally:
        await plain.cleanup()
