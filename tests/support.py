"""Helpers shared by tests: free ports, and skipping (or failing, in CI) when an outside server is missing."""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import signal
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

__all__ = [
    "free_port",
    "require_integration",
    "REQUIRE_INTEGRATION",
    "PG_ADMIN",
    "pg_database",
    "until",
    "stop_process",
    "two_fast_providers",
    "serve_app",
]

REQUIRE_INTEGRATION = os.environ.get("TURNOUT_REQUIRE_INTEGRATION") == "1"


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free loopback port BELOW the kernel's ephemeral range.

    Servers that bind port 0 and every outgoing connection take ports from the ephemeral range; a port picked
    there and released could be taken by another test of the parallel run before our server binds it. Below
    that range only other free_port() callers compete, across ~20,000 ports chosen at random.
    """
    high = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(12_000, high)
        if 18_700 <= port < 18_800:  # examples/sim.yaml's fixed ports
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # everything below the range is taken: fall back to the kernel's choice
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_integration(available: bool, reason: str) -> None:
    """Skip with a clear reason on a machine without the server; under TURNOUT_REQUIRE_INTEGRATION=1, fail."""
    if available:
        return
    if REQUIRE_INTEGRATION:
        pytest.fail(f"integration prerequisite missing (TURNOUT_REQUIRE_INTEGRATION=1): {reason}")
    pytest.skip(reason)


PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"


@contextmanager
def pg_database(prefix: str = "turnout_test") -> Iterator[str | None]:
    """A fresh PostgreSQL database (dropped afterwards, even with connections left open), as a SQLAlchemy URL;
    None when the server is not reachable (callers decide: require_integration, or a skipped variant)."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            name = f"{prefix}_{uuid.uuid4().hex[:10]}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:  # any failure to connect means "not available here"
        yield None
        return
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def until(
    predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition", *, interval: float = 0.02
) -> Any:
    """Poll `predicate()` (plain or async) until it returns something truthy, and return that; fail at the deadline.

    For conditions a real server or subprocess reaches on its own: the test decides nothing on timing, it only
    bounds how long it waits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"{what} not reached within {timeout:g} s")
        await asyncio.sleep(interval)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM a `turnout serve` subprocess still running and wait for it; kill it if it will not stop."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@asynccontextmanager
async def two_fast_providers() -> AsyncIterator[Any]:
    """A running simulator with one fast OpenAI and one fast Anthropic provider (gpt-4o, claude-sonnet-4)."""
    from adapters.sim.simulator import Simulator

    fast = {"port": 0, "latency": "5ms", "ttft": "10ms", "token_rate": 500}
    s = Simulator.from_yaml(
        {
            "host": "127.0.0.1",
            "admin_port": 0,
            "seed": 1,
            "providers": [
                {"id": "sim-openai", "family": "openai", "api_key": "k1", **fast, "models": [{"name": "gpt-4o"}]},
                {
                    "id": "sim-anthropic",
                    "family": "anthropic",
                    "api_key": "k2",
                    **fast,
                    "models": [{"name": "claude-sonnet-4"}],
                },
            ],
        }
    )
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def serve_app(app: Any, *, shutdown_timeout: float = 1.0) -> tuple[Any, int]:
    """Serve an app on a free loopback port as `turnout serve` does: the data plane's listener App
    (dataplane.http.listener) or an aiohttp Application (control app, simulators, receivers). Returns (runner, port);
    stop with `await runner.cleanup()`."""
    from aiohttp import web

    from dataplane.http.listener import start_listener
    from dataplane.http.messages import App

    if isinstance(app, App):
        listener = await start_listener(app, "127.0.0.1", 0, shutdown_timeout=shutdown_timeout)
        return listener, listener.port
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port
