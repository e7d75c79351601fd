"""`turnout webhooks add|list|rm|test` against a served API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.cli import main
from controlplane.clock import SystemClock
from tests.api.fakes import ADMIN_TOKEN, READ_TOKEN, FakeRuntime
from tests.api.threaded import serve_in_thread

pytestmark = pytest.mark.integration


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with serve_in_thread(FakeRuntime(tmp_path, SystemClock())) as u:
        yield u


def test_add_list_test_rm_round_trip(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["webhooks", "--url", url, "--token", ADMIN_TOKEN]
    assert main([*base, "add", "http://127.0.0.1:9/hook", "-e", "target.*", "-d", "ops"]) == 0
    out = capsys.readouterr().out
    assert "whsec_" in out and "shown once" in out
    ep = out.split("added ")[1].split()[0]
    assert main([*base, "--json", "list"]) == 0
    listed = capsys.readouterr().out
    assert ep in listed and "whsec_" not in listed
    assert main([*base, "test", ep]) == 0
    assert "queued test message msg_" in capsys.readouterr().out
    assert main([*base, "rm", ep]) == 0
    assert main([*base, "rm", ep]) == 1
    assert "404" in capsys.readouterr().err


def test_errors_are_short_and_never_show_the_token(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["webhooks", "--url", url, "--token", READ_TOKEN, "list"]) == 1
    err = capsys.readouterr().err
    assert "403" in err and READ_TOKEN not in err
    assert main(["webhooks", "--url", url, "--token", ADMIN_TOKEN, "add", "http://10.0.0.1/x"]) == 1
    assert "(url)" in capsys.readouterr().err
    assert main(["webhooks", "--url", "http://127.0.0.1:1", "--token", ADMIN_TOKEN, "list"]) == 1
    assert "cannot reach" in capsys.readouterr().err
