from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from controlplane.api.routes import install
from tests.api.fakes import ADMIN_TOKEN, READ_TOKEN, FakeRuntime
from tests.fakes import FakeClock


@pytest.fixture
def rt(tmp_path: Path) -> FakeRuntime:
    return FakeRuntime(tmp_path, FakeClock())


@pytest.fixture
async def client(rt: FakeRuntime) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    install(app, rt)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
