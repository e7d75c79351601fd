"""ControlPlane: wiring, resuming from the store after a restart, operator actions, config reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.config_loader import load_config
from controlplane.control_plane import ControlPlane
from controlplane.domain import ErrorClass, Observation, Source, State, TargetRef
from controlplane.errors import ConfigError
from probes import ProbeContext
from tests.fakes import EventSink, FakeClock

CONFIG = """
database: {{url: "sqlite:///{db}"}}
providers:
  - {{id: a, adapter: openai, base_url: "http://127.0.0.1:9/a/v1", models: [{{name: m}}]}}
  - {{id: b, adapter: openai, base_url: "http://127.0.0.1:9/b/v1", models: [{{name: m}}]}}
routes:
  - {{name: main, targets: [a/m, b/m]}}
probes: {{interval: 10s, kinds: {{catalogue: {{interval: 60s}}, completion: {{interval: {completion}}}}}}}
"""


class Script:
    """Per-target error classes the fake probes answer with (changed by the test)."""

    def __init__(self) -> None:
        self.answer: dict[str, ErrorClass] = {}

    async def probe(self, target: TargetRef, ctx: ProbeContext) -> list[Observation]:
        at = ctx.clock.wall()
        return [
            Observation(
                target=t.key,
                at=at,
                source=Source.PROBE,
                kind="completion",
                error_class=self.answer.get(t.key, ErrorClass.OK),
                latency_s=0.2,
            )
            for t in ctx.report_targets(target)
        ]


def _write(tmp_path: Path, completion: str = "30s") -> Path:
    path = tmp_path / "turnout.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "t.db", completion=completion))
    return path


async def _runtime(path: Path, clock: FakeClock, script: Script) -> ControlPlane:
    rt = ControlPlane(
        load_config(path),
        clock=clock,
        config_path=str(path),
        kinds={"catalogue": script.probe, "completion": script.probe},
        fire=False,
        webhooks=False,
    )
    await rt.start()
    return rt


async def test_probe_observations_flow_to_store_health_and_table(tmp_path: Path, clock: FakeClock) -> None:
    script = Script()
    rt = await _runtime(_write(tmp_path), clock, script)
    try:
        v0 = rt.table_source.current().version
        script.answer["a/m"] = ErrorClass.MODEL_GONE
        await rt.scheduler.run_probe_job("a/m", "completion")
        await rt.scheduler.run_probe_job("b/m", "completion")
        await rt.sink.flush()
        table = rt.table_source.current()
        assert table.version > v0
        assert table.targets["a/m"].state is State.WITHDRAWN and table.routes["main"].primary.target == "b/m"  # type: ignore[union-attr]
        assert set(rt.store.latest_observations("a/m")) == {"completion"}
        assert "target.withdrawn" in [e.type for e in rt.store.list_events()]
    finally:
        await rt.stop()


async def test_restart_resumes_states_and_table_versions(tmp_path: Path, clock: FakeClock) -> None:
    path, script = _write(tmp_path), Script()
    rt = await _runtime(path, clock, script)
    script.answer["a/m"] = ErrorClass.MODEL_GONE
    await rt.scheduler.run_probe_job("a/m", "completion")
    await rt.sink.flush()
    await rt.drain(target="b/m", reason="maintenance", actor="ops")
    before = rt.table_source.current()
    await rt.stop()

    rt2 = await _runtime(path, clock, script)
    try:
        after = rt2.table_source.current()
        assert after.version >= before.version
        assert rt2.health.states()["a/m"] is State.WITHDRAWN and rt2.health.states()["b/m"] is State.DRAINED
        script.answer["a/m"] = ErrorClass.OK
        await rt2.undrain(target="b/m", actor="ops")
        assert rt2.table_source.current().version > after.version  # the sequence continues, never restarts at 1
    finally:
        await rt2.stop()


async def test_reload_applies_a_valid_file_and_keeps_the_old_config_on_a_bad_one(
    tmp_path: Path, clock: FakeClock
) -> None:
    path, script = _write(tmp_path), Script()
    rt = await _runtime(path, clock, script)
    sink = EventSink()
    rt.bus.subscribe(sink)
    try:
        old = rt.config
        path.write_text(
            path.read_text().replace(
                'adapter: openai, base_url: "http://127.0.0.1:9/b', 'adapter: nope, base_url: "http://127.0.0.1:9/b'
            )
        )
        with pytest.raises(ConfigError, match="unknown adapter 'nope'"):
            await rt.reload_config()
        assert rt.config is old and sink.types() == []
        _write(tmp_path, completion="2m")
        new = await rt.reload_config(actor="sighup")
        assert rt.config is new and new.hash != old.hash
        assert rt.scheduler.jobs["completion:a/m"].interval == 120.0
        assert sink.types() == ["config.reloaded"] and sink.events[0].config_hash == new.hash
    finally:
        await rt.stop()


async def test_stop_is_clean_and_idempotent(tmp_path: Path, clock: FakeClock) -> None:
    rt = await _runtime(_write(tmp_path), clock, Script())
    await rt.stop()
    await rt.stop()
    assert rt.running.session.closed and rt.metrics.registry.get_sample_value("turnout_ready") == 0


async def test_control_app_mounts_every_part_on_the_control_plane(tmp_path: Path, clock: FakeClock) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from controlplane.api.app import build_control_app

    rt = await _runtime(_write(tmp_path), clock, Script())
    try:
        app = build_control_app(rt)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            assert (await client.get("/healthz")).status == 200
            ready = await client.get("/readyz")
            assert ready.status == 200 and (await ready.json())["table_version"] == rt.table_source.current().version
            assert (await ready.json())["checks"] == {
                "store": True,
                "table": True,
                "store_writes": True,
                "started": True,
            }
            metrics = await (await client.get("/metrics")).text()
            assert "turnout_table_version" in metrics
            assert (await client.get("/")).status == 200  # the status page
            assert (await client.get("/api/v1/usage")).status == 200
            leader = await (await client.get("/api/v1/leader")).json()
            assert leader["mode"] == "single" and leader["table_version"] == rt.table_source.current().version
    finally:
        await rt.stop()
