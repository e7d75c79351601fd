"""The database under the store: opening it and keeping its schema current.

SQLite gets WAL, synchronous=NORMAL and a busy timeout; PostgreSQL a small pre-pinged pool. Migrations are
additive (missing tables created, missing columns added, never renamed or dropped) and, on PostgreSQL, held
under an advisory lock so replicas starting together do not race. Errors leave here as StoreError with a
one-line text that never carries SQL parameters or a password.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel

from controlplane.errors import StoreError
from controlplane.rows import SCHEMA_VERSION, MetaRow

__all__ = ["open_engine", "migrate", "schema_version", "safe_url", "brief"]

log = logging.getLogger("turnout.store")

_SCHEMA_LOCK = 0x7363686D  # advisory lock key serialising schema migrations between processes


def open_engine(url: str) -> Engine:
    """An engine for `url` (sqlite:///… or postgresql+psycopg://…); StoreError when it cannot be made."""
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    except (SQLAlchemyError, ModuleNotFoundError) as exc:
        raise StoreError("open", f"{type(exc).__name__}: {safe_url(url)}") from None


def migrate(engine: Engine) -> int:
    """Create missing tables, add missing columns (additive migration), record schema_version.

    On PostgreSQL this holds an advisory lock for the whole migration: replicas starting together would
    otherwise race on CREATE TABLE (duplicate pg_type rows) and one of them would fail to start."""
    if engine.dialect.name != "postgresql":
        return _migrate(engine)
    try:
        with engine.connect() as lock_conn:
            lock_conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _SCHEMA_LOCK})
            try:
                return _migrate(engine)
            finally:
                lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _SCHEMA_LOCK})
                lock_conn.commit()
    except SQLAlchemyError as exc:
        raise StoreError("migrate", brief(exc)) from None


def schema_version(engine: Engine) -> int:
    with Session(engine) as s:
        row = s.get(MetaRow, "schema_version")
        return int(row.value) if row else 0


def safe_url(url: str) -> str:
    """The database URL without a password (never logged in clear)."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def brief(exc: BaseException) -> str:
    """One line, no SQL parameters (they may hold data we do not want in logs)."""
    orig = getattr(exc, "orig", None)
    return f"{type(orig or exc).__name__}: {str(orig or exc).splitlines()[0][:200]}"


def _migrate(engine: Engine) -> int:
    try:
        SQLModel.metadata.create_all(engine)
        added = _add_missing_columns(engine)
        with Session(engine) as s:
            row = s.get(MetaRow, "schema_version")
            if row is None:
                s.add(MetaRow(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(row.value or 0) < SCHEMA_VERSION:
                row.value = str(SCHEMA_VERSION)
                s.add(row)
            s.commit()
    except SQLAlchemyError as exc:
        raise StoreError("migrate", brief(exc)) from None
    for added_col in added:
        log.info("store: added column %s", added_col)
    return SCHEMA_VERSION


def _add_missing_columns(engine: Engine) -> list[str]:
    insp = inspect(engine)
    added: list[str] = []
    with engine.begin() as conn:
        for table in SQLModel.metadata.sorted_tables:
            if not insp.has_table(table.name):
                continue
            have = {c["name"] for c in insp.get_columns(table.name)}
            for col in table.columns:
                if col.name in have or col.primary_key:
                    continue
                ddl_type = col.type.compile(dialect=engine.dialect)
                default = ""
                if col.default is not None and getattr(col.default, "is_scalar", False):
                    default = f" DEFAULT {_sql_literal(getattr(col.default, 'arg', ''))}"
                elif not col.nullable:
                    default = (
                        " DEFAULT 0" if ddl_type.upper() in ("INTEGER", "BIGINT", "FLOAT", "REAL") else " DEFAULT ''"
                    )
                conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{col.name}" {ddl_type}{default}'))
                added.append(f"{table.name}.{col.name}")
    return added


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # durable on commit in WAL, minus an fsync per write
    cur.execute("PRAGMA busy_timeout=10000")  # a second writer waits instead of failing
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sql_literal(v: object) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int | float):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"
