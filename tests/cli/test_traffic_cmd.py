"""`turnout traffic` against a real data plane in front of the simulator, with the official openai SDK."""

from __future__ import annotations

import pytest

from controlplane.cli import build_parser
from controlplane.commands.traffic_cmd import TrafficOptions, run_traffic
from tests.dataplane.conftest import Env, make_env, sim  # noqa: F401  (fixtures)
from tests.dataplane.conftest import env as env


async def test_traffic_reaches_every_listed_route_and_prints_counters(env: Env) -> None:
    lines: list[str] = []
    total = await run_traffic(TrafficOptions(url=env.url, requests=12, pause=0.01, every=60.0), lines.append)
    assert total.requests == 12 and total.errors == 0
    assert lines[0].startswith(f"sending to {env.url}: routes main, cross")
    assert any("requests 12  errors 0" in line for line in lines)
    routed = {t.split("/")[0] for t in total.by_target}
    assert routed & {"oa", "ob"} and routed - {"ob"}  # both routes answered


async def test_traffic_counts_failovers_inside_requests(env: Env) -> None:
    env.sim.set_fault("oa", "overloaded")
    # Four requests: the fifth failure in a row would eject oa from this process's candidates at once
    # (breaker.consecutive_failures, dataplane/ejection.py) and the requests after it would not need a failover.
    total = await run_traffic(TrafficOptions(url=env.url, routes=("main",), requests=4, pause=0.01), lambda _l: None)
    assert total.errors == 0 and total.failovers == total.requests == 4
    assert set(total.by_target) == {"ob/gpt-x"}


def test_traffic_rejects_a_non_positive_count() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["traffic", "--requests", "0"])
