"""A data replica restarted while the control plane is down (issue 18 item 6), as `turnout serve` processes:
before, it opened its port only after 10 s and then sent every request to the target the last table had
withdrawn (401 upstream calls to it for 400 requests). Now it opens at once on the table it kept on disk,
says so in /readyz and a metric, and sends that target nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from adapters.sim import Simulator
from tests.chaos.conftest import ADMIN, OA, OB, sim_config
from tests.chaos.proc import Serve, until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROBES = {
    "interval": "500ms",
    "jitter": 0.1,
    "timeout": "2s",
    "kinds": {
        "catalogue": {"interval": "500ms"},
        "completion": {"interval": "500ms"},
        "status_page": {"enabled": False},
    },
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator.from_yaml(sim_config())  # real clock: the children probe in real time
    await s.start()
    yield s
    await s.stop()


async def _json(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    try:
        async with http.get(url, **kw) as r:
            return r.status, await r.json(content_type=None)
    except (aiohttp.ClientError, ValueError):
        return 0, None


async def test_a_replica_restarted_during_a_control_plane_outage_serves_the_kept_table(
    sim: Simulator, tmp_path: Path
) -> None:
    (tmp_path / "control").mkdir()
    (tmp_path / "data").mkdir()
    control = Serve(sim, tmp_path / "control", f"sqlite:///{tmp_path / 'control' / 't.db'}", probes=PROBES)
    replica = Serve(sim, tmp_path / "data", "sqlite:///unused.db", role="data", args=("--control-url", control.control))
    ready = f"http://127.0.0.1:{replica.data_port}/readyz"
    control.start()
    try:
        async with aiohttp.ClientSession() as http:
            await until(lambda: control.ready(http), timeout=30, what="the control plane ready")
            sim.set_fault("oa", "region_blocked", model="gpt-x")

            async def withdrawn() -> int:
                status, body = await control.get(http, "/api/v1/table")
                ok = status == 200 and body["targets"][OA]["state"] == "withdrawn"
                return int(body["version"]) if ok else 0

            version = await until(withdrawn, timeout=30, what=f"{OA} withdrawn")
            replica.start()

            async def adopted() -> bool:
                status, body = await _json(http, ready)
                return status == 200 and body["table_version"] >= version and body["table_source"] == "control"

            await until(adopted, timeout=30, what="the replica on the control plane's table")

            control.kill()  # the outage
            replica.kill()
            mark = len(replica.log)
            replica.start()

            async def up() -> Any:
                status, body = await _json(http, ready)
                return body if status == 200 else None

            body = await until(up, timeout=30, what="the restarted replica ready")
            restarted = replica.log[mark:]
            assert "until a control replica answers" in restarted, restarted[-2000:]
            assert "no control replica answered within" not in restarted, "it opened on the kept table, not after 10 s"
            assert body["table_source"] == "disk" and body["table_version"] >= version, body
            assert body["control_connected"] is False
            async with http.get(
                f"http://127.0.0.1:{replica.data_port}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}
            ) as r:
                assert "turnout_replica_table_from_disk 1.0" in await r.text()

            withdrawn_calls = sim.requests("oa", model="gpt-x")
            other_calls = sim.requests("ob")
            client = openai.AsyncOpenAI(base_url=replica.data, api_key=ADMIN, max_retries=0)
            for _ in range(40):
                answer = await client.chat.completions.create(
                    model="pair", messages=[{"role": "user", "content": "hi"}], max_tokens=5
                )
                assert answer.choices[0].message.content
            await client.close()
            assert sim.requests("oa", model="gpt-x") == withdrawn_calls, f"calls to {OA}, withdrawn in the kept table"
            assert sim.requests("ob") - other_calls >= 40, f"served by {OB}"
    except BaseException:
        print(control.log[-4000:], replica.log[-4000:])
        raise
    finally:
        replica.stop()
        control.stop()
