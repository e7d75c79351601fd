"""Bulk inserts for the rows written on every data-plane request: decision-log records and live observations.

Why not the ORM, nor the driver's executemany: SQLAlchemy's per-row parameter handling cost more CPU than the
rest of a proxied request, and the sqlite3 driver lets go of the GIL around every row it steps, so a writer thread
and the busy event loop traded the GIL once per row, which cost more than the inserts themselves
(bench/dataplane). One multi-row INSERT per chunk is one step. Callers hand over driver-native values (str, int,
float, bool, None) and pass datetimes through `datetime_param`, so rows read back exactly as if the ORM had
written them (tests/dataplane/test_decisions.py checks byte for byte).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from itertools import chain
from typing import Any

from sqlalchemy import Connection, Dialect

__all__ = ["BulkInsert"]

_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}
_MAX_PARAMS = 30_000  # per statement: under SQLite's 32,766 and PostgreSQL's 65,535
_MAX_ROWS = 256
# Between statements the writer thread lets other threads have its CPU: a chunk is ~0.5 ms of SQLite work, and on
# a busy machine a request woken on the same core would otherwise wait out the writer's whole time slice
# (bench/dataplane, A/B in one run: 1-connection p99 ~1.3 → ~0.95 ms; throughput and CPU per request within
# this machine's noise).
_yield_cpu = getattr(os, "sched_yield", lambda: None)


class BulkInsert:
    """`INSERT INTO table (columns) VALUES (…), (…), …` in the dialect's parameter style, chunked."""

    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        dialect: Dialect,
        *,
        add_on_conflict: Sequence[str] = (),
        conflict_keys: Sequence[str] = (),
    ) -> None:
        """`conflict_keys` and `add_on_conflict` given: an upsert that adds those columns to the existing row's
        (`ON CONFLICT (keys) DO UPDATE SET c = table.c + excluded.c`, SQLite and PostgreSQL alike); a chunk must
        not hold one key twice."""
        mark = _PLACEHOLDER.get(dialect.paramstyle)
        if mark is None:
            raise ValueError(f"unsupported DB-API paramstyle {dialect.paramstyle!r}")
        self.sqlite = dialect.name == "sqlite"
        self._head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        self._row = f"({', '.join([mark] * len(columns))})"
        self._tail = ""
        if conflict_keys:
            sums = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in add_on_conflict)
            self._tail = f" ON CONFLICT ({', '.join(conflict_keys)}) DO UPDATE SET {sums}"
        self._width = len(columns)
        # Statements come in a few sizes only (the largest power of two that fits, then halves): SQLite prepares a
        # statement per distinct SQL text and its driver caches 128, and batches arrive in every size.
        self._largest = 1 << (max(1, min(_MAX_ROWS, _MAX_PARAMS // len(columns))).bit_length() - 1)
        self._statements: dict[int, str] = {}  # rows per statement -> SQL

    def datetime_param(self, at: datetime) -> datetime | str:
        """A datetime as the driver should get it: PostgreSQL takes it as it is; on SQLite, SQLAlchemy's DATETIME
        text ('2026-01-02 03:04:05.000006', the fields as they are, no zone), which is what the ORM stores."""
        return at.replace(tzinfo=None).isoformat(" ", "microseconds") if self.sqlite else at

    def write(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert `rows` (each a tuple in column order) inside the caller's transaction."""
        start, size = 0, self._largest
        while start < len(rows):
            while size > len(rows) - start:
                size >>= 1
            chunk = rows[start : start + size]
            sql = self._statements.get(size)
            if sql is None:
                sql = self._statements[size] = self._head + ", ".join([self._row] * size) + self._tail
            params = tuple(chain.from_iterable(chunk))  # in C: the writer thread holds the GIL less
            if len(params) != self._width * size:
                raise ValueError(f"every row needs {self._width} values")
            conn.exec_driver_sql(sql, params)
            start += size
            if start < len(rows):
                _yield_cpu()
