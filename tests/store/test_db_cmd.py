"""`turnout db migrate|info|prune` on a SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.cli import main


def test_db_commands_migrate_report_and_prune(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    assert main(["db", "migrate", "--url", url]) == 0
    assert "schema version 1" in capsys.readouterr().out
    assert main(["db", "info", "--url", url]) == 0
    out = capsys.readouterr().out
    for table in ("observations", "observation_rollups", "events", "health_snapshot", "published_tables"):
        assert table in out
    assert main(["db", "prune", "--url", url]) == 0
    assert "pruned 0 observations" in capsys.readouterr().out


def test_db_command_with_a_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "turnout.yaml"
    bad.write_text("providers: []\n")
    assert main(["db", "info", "-c", str(bad)]) == 2
    assert "providers" in capsys.readouterr().err
