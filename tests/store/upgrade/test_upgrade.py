"""A database made by each earlier schema (fixtures written by that commit's own code, see make_fixture.py)
upgrades in place with `turnout db migrate`, on SQLite and on PostgreSQL: every current table and column
exists afterwards, every old row keeps its values, and the current store reads and extends it (event ids go on
from the old ones)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

import controlplane.decisions  # noqa: F401  (registers its table, as `turnout serve` does)
from controlplane.cli import main
from controlplane.domain import Observation
from controlplane.events import Event
from controlplane.rows import SCHEMA_VERSION
from controlplane.store import Store
from controlplane.webhooks.rows import WebhookEndpoint
from tests.fakes import FakeClock
from tests.support import pg_database, require_integration

FIXTURES = Path(__file__).parent / "fixtures"
VERSIONS = sorted(p.name for p in FIXTURES.iterdir() if (p / "schema.json").is_file())


def test_every_fixture_has_both_databases() -> None:
    assert len(VERSIONS) >= 3  # the store alone, + webhooks, + the decision log: each schema the project had
    for v in VERSIONS:
        assert {p.name for p in (FIXTURES / v).iterdir()} == {"schema.json", "turnout.sqlite", "postgres.sql"}, v


def _load_dump(url: str, dump: str) -> None:
    import psycopg

    sql = "\n".join(line for line in dump.splitlines() if not line.startswith("\\"))  # psql meta-commands
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(sql.encode())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def old_db(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(url, schema.json) of a copy of one fixture; the test's `version` parameter picks which."""
    version = request.node.callspec.params["version"]
    schema = json.loads((FIXTURES / version / "schema.json").read_text())
    if backend == "sqlite":
        shutil.copy(FIXTURES / version / "turnout.sqlite", tmp_path / "turnout.db")
        yield f"sqlite:///{tmp_path / 'turnout.db'}", schema
        return
    with pg_database("turnout_upgrade") as url:
        require_integration(url is not None, "PostgreSQL not reachable at 127.0.0.1:5432")
        assert url is not None
        _load_dump(url, (FIXTURES / version / "postgres.sql").read_text())
        yield url, schema


def _rows(url: str, tables: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the old tables, old columns only, in a stable order."""
    engine = sa.create_engine(url)
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table, cols in tables.items():
            names = ", ".join(f'"{c}"' for c in cols)
            out[table] = sorted((tuple(r) for r in conn.execute(sa.text(f'SELECT {names} FROM "{table}"'))), key=repr)
    engine.dispose()
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_an_older_database_upgrades_in_place(
    version: str, old_db: tuple[str, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, schema = old_db
    before = _rows(url, schema["tables"])
    assert all(before[t] for t in schema["tables"]), "the fixture has rows in every table"

    assert main(["db", "migrate", "--url", url]) == 0
    assert f"schema version {SCHEMA_VERSION}" in capsys.readouterr().out

    engine = sa.create_engine(url)
    insp = sa.inspect(engine)
    for table in SQLModel.metadata.sorted_tables:  # every table and column the current code defines
        assert insp.has_table(table.name), (version, table.name)
        have = {c["name"] for c in insp.get_columns(table.name)}
        assert {c.name for c in table.columns} <= have, (version, table.name)
    engine.dispose()
    assert _rows(url, schema["tables"]) == before  # nothing old was changed or lost

    store = Store(url, FakeClock())
    try:
        assert store.schema_version() == SCHEMA_VERSION
        old_events = store.list_events(limit=1000)
        assert [e.id for e in old_events] == [1, 2]
        [new] = store.append_events(
            [Event("target.state_changed", datetime(2026, 12, 2, tzinfo=UTC), "openai/gpt-5.5")]
        )
        assert new.id == 3  # event ids are monotonic across the upgrade (webhooks and pollers page by them)
        at = datetime(2026, 12, 2, tzinfo=UTC)
        assert store.add_observations([Observation.success("openai/gpt-5.5", kind="completion", at=at, latency_s=0.5)])
        assert [o.latency_s for o in store.recent_observations("openai/gpt-5.5")] == [0.5]
        with Session(store.engine) as s:  # rows the current webhook code reads
            assert len(s.exec(select(WebhookEndpoint)).all()) == (2 if "webhook_endpoints" in schema["tables"] else 0)
    finally:
        store.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_migrating_twice_changes_nothing(version: str, old_db: tuple[str, dict[str, Any]]) -> None:
    url, _ = old_db
    assert main(["db", "migrate", "--url", url]) == 0
    tables = {t.name: sorted(c.name for c in t.columns) for t in SQLModel.metadata.sorted_tables}
    once = _rows(url, tables)
    assert main(["db", "migrate", "--url", url]) == 0
    assert _rows(url, tables) == once
