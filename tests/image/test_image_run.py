"""The container image, run: `make image-test` builds it (Dockerfile, on a base made from Debian packages when no
registry is reachable) and runs this file with TURNOUT_IMAGE and TURNOUT_PODMAN set. The container starts with the
image's own entrypoint and command, reads its config from the /etc/turnout volume, keeps its SQLite database in
the /var/lib/turnout volume, becomes ready, passes its own HEALTHCHECK, and answers a chat request (official
`openai` SDK) through the simulator on the host. Skipped when the variables are not set (`make test`)."""

from __future__ import annotations

import json
import os
import resource
import shlex
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml

from adapters.sim import Simulator
from controlplane.version import __version__
from tests.support import free_port, until
from tests.tracing.otlp_receiver import OtlpReceiver

IMAGE = os.environ.get("TURNOUT_IMAGE", "")
PODMAN = shlex.split(os.environ.get("TURNOUT_PODMAN", "podman"))
KEY = "sk-image-test-provider-key"
UID = 10001

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not IMAGE, reason="make image-test builds the image and sets TURNOUT_IMAGE"),
    pytest.mark.timeout(600),
]


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, check=check, timeout=timeout)


def _image_config() -> dict[str, Any]:
    [info] = json.loads(podman("image", "inspect", IMAGE).stdout)
    return {**info["Config"], "Healthcheck": info["Healthcheck"]}  # podman shows the healthcheck beside Config


def test_the_image_is_configured_as_documented() -> None:
    cfg = _image_config()
    assert cfg["Entrypoint"] == ["turnout", "serve"]
    assert cfg["Cmd"] == ["-c", "/etc/turnout/turnout.yaml"]
    assert cfg["User"] == f"{UID}:{UID}"  # never root
    assert set(cfg["Volumes"]) == {"/etc/turnout", "/var/lib/turnout"}
    assert set(cfg["ExposedPorts"]) == {"8700/tcp", "8701/tcp"}
    assert "TURNOUT_READYZ_URL=http://127.0.0.1:8701/readyz" in cfg["Env"]
    assert cfg["Healthcheck"]["Test"][0] == "CMD" and "TURNOUT_READYZ_URL" in " ".join(cfg["Healthcheck"]["Test"])
    out = podman("run", "--rm", *_limits(), "--entrypoint", "turnout", IMAGE, "--version").stdout
    assert out.strip() == f"turnout {__version__}"


def _limits() -> list[str]:
    """Limits within this machine's: the runtime's defaults (nofile 1048576) can be above what a sandboxed host
    allows, and the container is refused; a few thousand files and processes are plenty for one Turnout."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    fast = {"port": 0, "latency": "2ms", "ttft": "2ms", "token_rate": 2000, "api_key": KEY}
    s = Simulator.from_yaml(
        {
            "host": "127.0.0.1",
            "admin_port": 0,
            "seed": 5,
            "providers": [
                {"id": "oa", "family": "openai", **fast, "models": [{"name": "gpt-x"}]},
                {"id": "an", "family": "anthropic", **fast, "models": [{"name": "claude-x"}]},
            ],
        }
    )
    await s.start()
    yield s
    await s.stop()


def _config(sim: Simulator, control_port: int, data_port: int) -> dict[str, Any]:
    providers = sim.turnout_providers()
    for p in providers:
        p["api_key"] = "${SIM_KEY}"
    return {
        # The host's network (see the run below), so loopback is shared with the simulator and the test.
        "server": {
            "control": {"host": "127.0.0.1", "port": control_port},
            "data": {"host": "127.0.0.1", "port": data_port},
        },
        "database": {"url": "sqlite:////var/lib/turnout/turnout.db"},
        "providers": providers,
        "routes": [{"name": "main", "targets": ["oa/gpt-x", "an/claude-x"]}],
        "probes": {"interval": "5s", "kinds": {"status_page": {"enabled": False}}},
    }


@pytest.fixture
async def otlp() -> AsyncIterator[OtlpReceiver]:
    r = await OtlpReceiver().start()
    yield r
    await r.stop()


async def test_the_image_serves_a_chat_request_through_the_simulator(
    sim: Simulator, otlp: OtlpReceiver, tmp_path: Path
) -> None:
    etc, data = tmp_path / "etc", tmp_path / "data"
    etc.mkdir()
    data.mkdir()
    os.chown(data, UID, UID)  # the image's user owns its database volume, as an operator's chown would do
    control_port, data_port = free_port(), free_port()
    (etc / "turnout.yaml").write_text(yaml.safe_dump(_config(sim, control_port, data_port)))
    name = f"turnout-image-test-{uuid.uuid4().hex[:8]}"
    podman(
        "run", "--detach", "--name", name, *_limits(),
        # Host networking: this machine has no container network to publish ports through; the ports the
        # image exposes are what the config's server section names here.
        "--network", "host",
        "--env", f"SIM_KEY={KEY}",
        "--env", f"TURNOUT_READYZ_URL=http://127.0.0.1:{control_port}/readyz",
        # the image carries the tracing extra: its spans reach an OTLP receiver on the host
        "--env", f"OTEL_EXPORTER_OTLP_ENDPOINT={otlp.endpoint}",
        "--env", "OTEL_BSP_SCHEDULE_DELAY=100",
        "--volume", f"{etc}:/etc/turnout:ro",
        "--volume", f"{data}:/var/lib/turnout",
        IMAGE,
    )  # fmt: skip
    try:
        control = f"http://127.0.0.1:{control_port}"
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                if podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip() != "true":
                    pytest.fail(f"the container stopped: {podman('logs', name, check=False).stdout}")
                try:
                    async with http.get(f"{control}/readyz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await until(ready, timeout=120, what="the container's /readyz", interval=0.5)
            async with http.get(f"{control}/healthz") as r:
                assert await r.json() == {"status": "ok", "version": __version__}

        health = podman("healthcheck", "run", name, check=False)
        assert health.returncode == 0, f"the image's HEALTHCHECK failed: {health.stdout}{health.stderr}"
        assert podman("exec", name, "id", "-u").stdout.strip() == str(UID)

        client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{data_port}/v1", api_key="unused", max_retries=0)
        reply = await client.chat.completions.create(model="main", messages=[{"role": "user", "content": "hello"}])
        assert reply.choices[0].message.content
        assert reply.model in ("gpt-x", "claude-x")
        await client.close()
        assert (data / "turnout.db").is_file()  # the database lives on the volume, not in the container
        [span] = await until(lambda: otlp.named("chat main"), timeout=30, what="the request's span from the image")
        assert span.attributes["gen_ai.response.model"] == reply.model and span.resource["service.name"] == "turnout"

        stop = podman("stop", "--time", "20", name)
        assert stop.returncode == 0
        assert podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"  # clean SIGTERM exit
    finally:
        logs = podman("logs", name, check=False)
        podman("rm", "--force", name, check=False)
        print(logs.stdout[-4000:], logs.stderr[-4000:])
