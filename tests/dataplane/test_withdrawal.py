"""Withdrawal under steady load, with the real control plane (store → breaker → ranker → table) behind the
data plane: live outcomes alone move the breakers, and clients never see an error while another target can answer.

20 concurrent clients run in waves of a fixed number of requests (no timing decisions): the primary starts
answering `region_blocked` (withdrawn at once), then the next target hangs (opened by its breaker after the
first-byte timeouts). Once a target is withdrawn or open, it receives no live request.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from adapters.sim import Simulator
from controlplane.control_plane import ControlPlane
from controlplane.domain import State
from dataplane.proxy import build_data_app
from tests.dataplane.conftest import parse_with_key, start_app, turnout_yaml
from tests.fakes import FakeClock

pytestmark = pytest.mark.integration

CLIENTS = 20
MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


async def _wave(client: openai.AsyncOpenAI, per_client: int, errors: list[str], targets: list[str]) -> None:
    async def one() -> None:
        for i in range(per_client):
            try:
                raw = await client.chat.completions.with_raw_response.create(
                    model="chain", messages=MSG, stream=i % 2 == 1
                )
                targets.append(raw.headers["x-turnout-target"])
                parsed = raw.parse()
                if i % 2 == 1:
                    async for _ in parsed:  # type: ignore[union-attr]
                        pass
            except openai.APIError as exc:
                errors.append(repr(exc))

    await asyncio.gather(*(one() for _ in range(CLIENTS)))


async def test_withdrawal_and_hang_under_load_without_client_errors(sim: Simulator, tmp_path: Path) -> None:
    text = turnout_yaml(
        sim,
        f'database: {{url: "sqlite:///{tmp_path / "t.db"}"}}',
        routes="  - {name: chain, targets: [oa/gpt-x, ob/gpt-x, an/claude-x]}\n",
    )
    text = text.replace("first_byte_timeout: 1s", "first_byte_timeout: 500ms")
    cfg = parse_with_key(text)
    rt = ControlPlane(cfg, clock=FakeClock(), probes=False, webhooks=False, fire=False)
    await rt.start()
    app = build_data_app(rt)
    runner, port = await start_app(app)
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0, timeout=30)
    errors: list[str] = []
    targets: list[str] = []
    try:

        def primary() -> str:
            p = rt.table_source.current().routes["chain"].primary
            assert p is not None
            return p.target

        await _wave(client, 3, errors, targets)  # healthy: the ranker may reorder on live latency, that is fine

        # -- the primary is withdrawn from this region overnight --------------------------------------
        first = primary()
        p1 = first.split("/")[0]
        sim.set_fault(p1, "region_blocked")
        await _wave(client, 3, errors, targets)
        await rt.sink.flush()
        assert rt.table_source.current().targets[first].state is State.WITHDRAWN
        at_withdrawal = sim.requests(p1)
        targets.clear()
        await _wave(client, 3, errors, targets)
        assert sim.requests(p1) == at_withdrawal  # not one more live request to a withdrawn target
        assert first not in targets

        # -- the new primary hangs: first-byte timeouts fail over, its breaker opens ---------------
        second = primary()
        p2 = second.split("/")[0]
        (third,) = {"oa/gpt-x", "ob/gpt-x", "an/claude-x"} - {first, second}
        sim.set_fault(p2, "hang")
        await sim.tick()
        before_hang = sim.requests(p2)
        await _wave(client, 2, errors, targets)
        await rt.sink.flush()
        assert rt.table_source.current().targets[second].state is State.OPEN
        assert sim.requests(p2) - before_hang <= CLIENTS * 2
        at_open = sim.requests(p2)
        targets.clear()
        await _wave(client, 3, errors, targets)
        assert sim.requests(p2) == at_open  # an open target gets no live traffic (only the breaker's own trials)
        assert set(targets) == {third}
        assert errors == []
    finally:
        sim.clear_faults()
        await client.close()
        await runner.cleanup()
        await rt.stop()
