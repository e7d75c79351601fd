"""Run INSIDE a checkout of an older commit (`make_fixture.py` sets PYTHONPATH to it): that commit's own code
creates its schema and writes rows into the database at argv[1]; prints the schema it made as JSON.

Only names every Turnout commit since the first store has are used (controlplane.store.Store, the clock, the
SQLModel metadata); each table gets two rows of plausible values through SQLAlchemy Core on that commit's table
objects, so the fixture holds data in exactly the columns and types the older code defined."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _table_modules() -> list[str]:
    files = subprocess.run(
        ["git", "grep", "-l", "table=True", "--", "controlplane", "adapters", "dataplane"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [f.removesuffix(".py").replace("/", ".") for f in files if f.endswith(".py")]


def _value(table: sa.Table, col: sa.Column[Any], i: int) -> Any:
    name, t = col.name, col.type
    if isinstance(t, sa.types.TypeDecorator):  # e.g. sqlmodel's AutoString: judge by what it stores
        t = t.impl_instance
    if name == "target":
        return f"openai/gpt-fixture-{i}"
    if name == "provider":
        return "openai"
    if name in ("error_class",):
        return "ok" if i == 1 else "rate_limited"
    if name == "source":
        return "probe"
    if name == "kind":
        return "completion"
    if name == "type" and table.name == "events":
        return "target.state_changed"
    if name == "status" and isinstance(t, sa.String):
        return "delivered"
    if isinstance(t, sa.DateTime):
        return AT + timedelta(minutes=i)
    if isinstance(t, sa.Boolean):
        return True
    if isinstance(t, sa.Integer):
        return i
    if isinstance(t, sa.Float | sa.Numeric):
        return 0.25 * i
    if isinstance(t, sa.JSON):
        return {"fixture": i}
    if isinstance(t, sa.Enum):
        return t.enums[0]
    if isinstance(t, sa.String | sa.Text):
        length = getattr(t, "length", None) or 40
        return f"{name}-{i}"[:length]
    raise SystemExit(f"no fixture value for {table.name}.{name} ({t!r})")


def _generated(col: sa.Column[Any]) -> bool:
    """An integer primary key the database numbers itself (event ids, delivery seq...)."""
    if not (col.primary_key and isinstance(col.type, sa.Integer)):
        return False
    return col.autoincrement is True or (col.autoincrement == "auto" and len(col.table.primary_key.columns) == 1)


def main(url: str) -> None:
    for module in _table_modules():
        importlib.import_module(module)
    from controlplane.clock import SystemClock
    from controlplane.store import Store

    store = Store(url, SystemClock())  # the older code creates its schema, as its `turnout serve` would
    schema: dict[str, list[str]] = {}
    with store.engine.begin() as conn:
        for table in SQLModel.metadata.sorted_tables:
            schema[table.name] = sorted(c.name for c in table.columns)
            if table.name == "turnout_meta":
                continue  # the store wrote schema_version itself
            for i in (1,) if table.name == "health_snapshot" else (1, 2):  # the snapshot is a single row, id 1
                row = {c.name: _value(table, c, i) for c in table.columns if not _generated(c)}
                conn.execute(table.insert().values(**row))
    meta = store.schema_version()
    store.close()
    print(json.dumps({"schema_version": meta, "tables": schema}, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
