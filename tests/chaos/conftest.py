"""The chaos harness: the whole of Turnout in one process, in front of the provider simulator.

`stack` builds, on loopback free ports: the simulator (four providers, one per family plus a second
OpenAI-compatible one), the real ControlPlane (store on SQLite in tmp_path, breakers, ranker, publisher, the
webhook dispatcher) with probes driven by hand on a FakeClock, the data plane, the control app (status API,
/metrics) and a webhook receiver that verifies every delivery with `standardwebhooks`.

Nothing here sleeps to wait for timing: a test moves time with `stack.step(seconds)`, which advances the
injected clock, runs the probes that are due and the health tick, and waits for the pipeline to settle.
Secrets are sentinels (`SENTINELS`) so the security tests can grep every output for them.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from adapters.sim import Simulator
from controlplane.api.app import build_control_app
from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.control_plane import ControlPlane
from dataplane.proxy import build_data_app
from tests.fakes import FakeClock
from tests.support import serve_app
from tests.webhooks.receiver import Receiver

__all__ = [
    "SOAK",
    "SENTINELS",
    "ADMIN",
    "READER",
    "Stack",
    "sim_config",
    "turnout_config",
    "start_app",
    "open_fds",
    "build_stack",
    "teardown_stack",
]

SOAK = os.environ.get("TURNOUT_SOAK") == "1"

# Recognisable secrets: if any of these strings shows up in an output, a secret leaked.
PROVIDER_KEY = "sk-SENTINEL-provider-key-7f3a9c"
ADMIN = "SENTINEL-admin-token-5b8e21d4"
READER = "SENTINEL-read-token-0c4d77aa"
SENTINELS = (PROVIDER_KEY, ADMIN, READER)

# target keys of the standard stack
OA, OB, AN, GG = "oa/gpt-x", "ob/gpt-x", "an/claude-x", "gg/gem-x"


def sim_config() -> dict[str, Any]:
    fast = {
        "port": 0,
        "latency": "2ms",
        "ttft": "2ms",
        "token_rate": 2000,
        "rate_limits": {"requests": 10**9, "tokens": 10**12},
    }  # the simulated clock never refills them
    models = {"openai": "gpt-x", "anthropic": "claude-x", "gemini": "gem-x"}
    out: dict[str, Any] = {
        "host": "127.0.0.1",
        "admin_port": 0,
        "seed": 3,
        "providers": [
            {
                "id": pid,
                "family": fam,
                "api_key": PROVIDER_KEY,
                **fast,
                "models": [{"name": models[fam], "context_window": 8192}],
            }
            for pid, fam in (("oa", "openai"), ("ob", "openai"), ("an", "anthropic"), ("gg", "gemini"))
        ],
    }
    # a second model, so one model leaving oa's catalogue is a drop, not an empty listing (which withdraws nothing)
    out["providers"][0]["models"].append({"name": "gpt-x-mini", "context_window": 8192})
    return out


def turnout_config(
    sim: Simulator, db_url: str, control_port: int = 0, data_port: int = 0, **overrides: Any
) -> dict[str, Any]:
    """A Turnout config (as a mapping) for the standard stack; `overrides` replace whole sections."""
    providers = sim.turnout_providers()
    for p in providers:
        p["api_key"] = "${SIM_KEY}"  # the key comes from the environment, as it must in production
    cfg: dict[str, Any] = {
        "server": {
            "control": {"host": "127.0.0.1", "port": control_port},
            "data": {"host": "127.0.0.1", "port": data_port},
            "max_body_bytes": 64 * 1024,
        },
        "database": {"url": db_url},
        "auth": {
            "public_read": True,
            "tokens": [
                {"token": ADMIN, "scope": "admin", "name": "ops"},
                {"token": READER, "scope": "read", "name": "dash"},
            ],
        },
        "webhooks": {"allow_private_networks": ["127.0.0.0/8"], "timeout": "2s", "retry_schedule": ["1s", "2s"]},
        "providers": providers,
        "routes": [{"name": "main", "targets": [OA, OB, AN]}, {"name": "pair", "targets": [OA, OB]}],
        "probes": {
            "interval": "10s",
            "jitter": 0.0,
            "timeout": "1s",
            "kinds": {
                "catalogue": {"interval": "30s"},
                "completion": {"interval": "5s"},
                "status_page": {"enabled": False},
            },
        },
        "breaker": {
            "window": "60s",
            "min_calls": 3,
            "consecutive_failures": 3,
            "open_duration": "20s",
            "open_duration_max": "120s",
            "half_open_trials": 2,
            "half_open_successes": 2,
            "withdrawn_recheck": "30s",
        },
        "dataplane": {
            "first_byte_timeout": "1s",
            "stall_timeout": "1s",
            "total_timeout": "6s",
            "connect_timeout": "1s",
        },
    }
    cfg.update(overrides)
    return cfg


def parse(raw: dict[str, Any]) -> Config:
    return parse_config(yaml.safe_dump(raw), env={"SIM_KEY": PROVIDER_KEY})


async def start_app(app: Any) -> tuple[Any, int]:
    return await serve_app(app)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Stack:
    sim: Simulator
    rt: ControlPlane
    clock: FakeClock
    data: str  # data plane base, ends in /v1
    control: str  # control app base
    http: aiohttp.ClientSession
    receiver: Receiver
    endpoint: str = ""  # the receiver's webhook endpoint id
    raw: dict[str, Any] = field(default_factory=dict)  # the Turnout config it was built from (keys as ${SIM_KEY})
    _runners: list[Any] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    # -- time ----------------------------------------------------------------------------------
    async def step(self, seconds: float = 1.0, *, by: float = 1.0) -> None:
        """Advance the injected clock `seconds` in steps of `by`, running due probes and the health tick each step."""
        moved = 0.0
        while moved < seconds - 1e-9:
            self.clock.advance(by)
            moved += by
            await self.sim.tick()
            await self.rt.scheduler.run_due()
            await self.rt.sink.flush()
            await self.rt.sink.tick()
        await self.rt.sink.flush()

    # -- clients -------------------------------------------------------------------------------
    async def chat(
        self, model: str = "main", *, stream: bool = False, headers: dict[str, str] | None = None, **body: Any
    ) -> tuple[int, dict[str, str], Any]:
        """One chat completion; returns status, headers and the JSON body (or, for streams, the raw SSE text)."""
        payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream, **body}
        async with self.http.post(f"{self.data}/chat/completions", json=payload, headers=headers or {}) as r:
            raw = await r.read()
            if r.content_type == "application/json":
                return r.status, dict(r.headers), json.loads(raw)
            return r.status, dict(r.headers), raw.decode(errors="replace")

    async def api(self, path: str, token: str | None = None, method: str = "GET", **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, f"{self.control}{path}", headers=headers, **kw) as r:
            raw = await r.read()
            return r.status, (json.loads(raw) if r.content_type == "application/json" else raw.decode(errors="replace"))

    # -- what happened ---------------------------------------------------------------------------
    def table(self) -> Any:
        return self.rt.table_source.current()

    def state(self, target: str) -> str:
        return str(self.table().targets[target].state)

    def events(self, *types: str) -> list[Any]:
        rows = self.rt.store.list_events(after=0, types=list(types) or None, limit=10_000)
        return list(rows)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.rt.metrics.registry.get_sample_value(name, labels or {}) or 0.0

    async def delivered(self, types: set[str], timeout: float = 10.0) -> list[str]:
        """Wait until the receiver holds a verified delivery of each type (woken by each arrival, bounded by
        `timeout`: deliveries travel over real sockets); return every type received."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._arrived.clear()
            got = [str(r.body.get("type")) for r in self.receiver.unique()]
            if types <= set(got) or loop.time() > deadline:
                return got
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
            except TimeoutError:
                pass


async def build_stack(tmp_path: Path, mutate: Callable[[dict[str, Any]], None] | None = None) -> Stack:
    """Start the whole stack with its store in `tmp_path`; `mutate(raw)` may change the Turnout config first."""
    # Wall time starts now: receivers verify signature timestamps against their real clock (5 min tolerance).
    clock = FakeClock(datetime.now(UTC))
    sim = Simulator.from_yaml(sim_config(), clock=clock)
    await sim.start()
    raw = turnout_config(sim, f"sqlite:///{tmp_path / 'turnout.db'}")
    if mutate is not None:
        mutate(raw)
    cfg = parse(raw)
    rt = ControlPlane(cfg, clock=clock, fire=False, webhooks=True)
    await rt.start()
    runners: list[Any] = []
    data_runner, data_port = await start_app(build_data_app(rt))
    control_runner, control_port = await start_app(build_control_app(rt))
    runners += [data_runner, control_runner]
    receiver = await Receiver().start()
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    stack = Stack(
        sim,
        rt,
        clock,
        f"http://127.0.0.1:{data_port}/v1",
        f"http://127.0.0.1:{control_port}",
        http,
        receiver,
        raw=raw,
        _runners=runners,
    )
    status, created = await stack.api("/api/v1/webhooks", ADMIN, "POST", json={"url": receiver.url})
    assert status == 201, created
    receiver.secret, stack.endpoint = created["secret"], created["id"]
    receiver.on_receive = lambda _n: stack._arrived.set()
    return stack


async def teardown_stack(stack: Stack) -> None:
    """Stop everything `build_stack` started, in reverse order."""
    stack.sim.clear_faults()
    await stack.http.close()
    for r in reversed(stack._runners):
        await r.cleanup()
    await stack.rt.stop()
    await stack.receiver.stop()
    await stack.sim.stop()


@pytest.fixture
async def make_stack(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    """Build a stack; `mutate(raw_config)` may change the Turnout config before it is parsed."""
    built: list[Stack] = []

    async def make(mutate: Callable[[dict[str, Any]], None] | None = None, sub: str = "s") -> Stack:
        d = tmp_path / f"{sub}{len(built)}"
        d.mkdir()
        s = await build_stack(d, mutate)
        built.append(s)
        return s

    yield make
    for s in built:
        await teardown_stack(s)


@pytest.fixture
async def stack(make_stack: Callable[..., Awaitable[Stack]]) -> Stack:
    return await make_stack()
