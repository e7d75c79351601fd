"""Make the upgrade fixtures: a database written by an older commit's own code, on SQLite and on PostgreSQL.

    .venv/bin/python -m tests.store.upgrade.make_fixture COMMIT [COMMIT ...]

For each commit: a temporary `git worktree` at it, `write_old.py` run with that checkout first on the path (so
its Store and tables make the schema and its rows), then `fixtures/<commit>/` gets `turnout.sqlite` (the SQLite
file), `postgres.sql` (`pg_dump --inserts` of the PostgreSQL database it wrote) and `schema.json` (its tables,
columns and schema_version). Fixtures are checked in: they must stay what the old code wrote, so never
regenerate one for a commit that already has a directory, add the next release's instead (docs/upgrading.md).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import PG_ADMIN

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
FIXTURES = HERE / "fixtures"


def _pg(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def make(commit: str) -> Path:
    short = subprocess.run(
        ["git", "rev-parse", "--short=7", commit], cwd=ROOT, capture_output=True, text=True, check=True
    )
    out = FIXTURES / short.stdout.strip()
    if out.exists():
        raise SystemExit(f"{out} exists: fixtures are what the old code wrote; do not regenerate them")
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="turnout-fixture-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), commit], cwd=ROOT, check=True)
        try:
            env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}
            run = [sys.executable, str(HERE / "write_old.py")]
            schema = subprocess.run(
                [*run, f"sqlite:///{out / 'turnout.sqlite'}"],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            (out / "schema.json").write_text(schema)
            db = f"turnout_fixture_{out.name}"
            _pg(f'DROP DATABASE IF EXISTS "{db}"')
            _pg(f'CREATE DATABASE "{db}"')
            try:
                subprocess.run(
                    [*run, f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"], cwd=tree, env=env, check=True
                )
                dump = subprocess.run(
                    ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "--no-owner", "--no-privileges", "--inserts", db],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                (out / "postgres.sql").write_text(dump)
            finally:
                _pg(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=True)
    return out


if __name__ == "__main__":
    for c in sys.argv[1:]:
        print(make(c))
