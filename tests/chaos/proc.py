"""`turnout serve` as a child process for the process-fault and secret tests: spawn it on free ports with a
config pointing at an in-test simulator, read its log (a pipe, so file-size limits on the child never touch
it), wait for conditions with a deadline, and stop it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from adapters.sim import Simulator
from tests.chaos.conftest import PROVIDER_KEY, turnout_config
from tests.support import PG_ADMIN, free_port, until
from tests.support import pg_database as support_pg_database

__all__ = ["Serve", "until", "pg_database", "PG_ADMIN"]


class Serve:
    """One `turnout serve -c FILE --role all` child (or another role); `log` accumulates its output across restarts."""

    def __init__(
        self, sim: Simulator, tmp: Path, db_url: str, *, role: str = "all", args: tuple[str, ...] = (), **overrides: Any
    ) -> None:
        self.role, self.args = role, args  # e.g. role="data", args=("--control-url", URL): a data replica
        self.control_port, self.data_port = free_port(), free_port()
        raw = turnout_config(sim, db_url, self.control_port, self.data_port, **overrides)
        self.config = tmp / "turnout.yaml"
        self.config.write_text(yaml.safe_dump(raw))
        self.control = f"http://127.0.0.1:{self.control_port}"
        self.data = f"http://127.0.0.1:{self.data_port}/v1"
        self.proc: subprocess.Popen[bytes] | None = None
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def log(self) -> str:
        return "".join(self._lines)

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SIM_KEY": PROVIDER_KEY}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controlplane.cli",
                "serve",
                "-c",
                str(self.config),
                "--role",
                self.role,
                *self.args,
            ],
            cwd=str(self.config.parent),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out = self.proc.stdout
        assert out is not None

        def pump() -> None:
            for line in iter(out.readline, b""):
                self._lines.append(line.decode(errors="replace"))

        self._reader = threading.Thread(target=pump, daemon=True)
        self._reader.start()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._join()

    def stop(self) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop in time. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._join()
        return self.proc.returncode

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    async def get(self, http: aiohttp.ClientSession, path: str, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with http.get(f"{self.control}{path}", headers=headers) as r:
                body = await r.json() if r.content_type == "application/json" else await r.text()
                return r.status, body
        except aiohttp.ClientError:
            return 0, None

    async def ready(self, http: aiohttp.ClientSession) -> bool:
        return (await self.get(http, "/readyz"))[0] == 200


def pg_database() -> AbstractContextManager[str | None]:
    """A fresh PostgreSQL database for one test (dropped after); None when the server is not reachable."""
    return support_pg_database("turnout_chaos")
