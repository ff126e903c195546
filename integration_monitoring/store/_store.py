"""The local telemetry store: one DuckDB file whose tables mirror the Log Analytics workspace."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import duckdb_kql
import pyarrow as pa
from duckdb_kql.types import kusto_type

from .._time import naive_utc
from ._schema import KQL_TO_DUCKDB, TABLES, create_statements

DEFAULT_PATH = ".data/telemetry.duckdb"

_ARROW = {
    "string": pa.string(), "datetime": pa.timestamp("us"), "int": pa.int32(),
    "long": pa.int64(), "real": pa.float64(), "dynamic": pa.string(), "bool": pa.bool_(),
}


def default_path() -> str:
    """`TELEMETRY_DB`, else `.data/telemetry.duckdb`."""
    return os.environ.get("TELEMETRY_DB") or DEFAULT_PATH


@dataclass
class QueryResult:
    """A KQL answer: column names and Kusto types, and rows of Python values."""

    columns: list[tuple[str, str]]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        names = [name for name, _ in self.columns]
        return [dict(zip(names, row, strict=True)) for row in self.rows]


class TelemetryStore:
    """A DuckDB file with `AppTraces` and `AppMetrics`; safe to share between threads.

    DuckDB lets one process write a file at a time, so a process opens each file once
    (`open_store`) and every thread works on its own cursor.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = str(path or default_path())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb_kql.connect(self.path)
        self._lock = threading.Lock()
        for statement in create_statements():
            self._con.execute(statement)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            cur = self._con.cursor()
        cur.execute("SET TimeZone='UTC'")
        return cur

    def append(self, table: str, rows: Sequence[dict[str, Any]]) -> int:
        """Insert rows (dicts keyed by column name; missing columns are NULL)."""
        if not rows:
            return 0
        columns = TABLES[table]
        batch = pa.table({
            name: pa.array([row.get(name) for row in rows], type=_ARROW[kind])
            for name, kind in columns
        })
        cur = self.cursor()
        try:
            cur.register("_batch", batch)
            casts = ", ".join(
                f'CAST("{name}" AS {KQL_TO_DUCKDB[kind]}) AS "{name}"' for name, kind in columns
            )
            cur.execute(f'INSERT INTO "{table}" SELECT {casts} FROM _batch')
        finally:
            cur.close()
        return len(rows)

    def kql(self, query: str, *, timespan: tuple[Any, Any] | None = None,
            now: Any = None) -> QueryResult:
        """Run KQL with duckdb-kql; the same text Log Analytics would run.

        `timespan` limits every table to [since, until], as the query API's timespan and an
        alert rule's window do; `now` fixes what `now()` and `ago()` mean.
        """
        cur = self.cursor()
        try:
            if timespan is not None:
                self._limit_tables(cur, *timespan)
            relation = duckdb_kql.query(cur, query, query_now=now)
            names = relation.columns
            kinds = [kusto_type(t) for t in relation.types]
            rows = relation.fetchall()
        finally:
            cur.close()
        return QueryResult(list(zip(names, kinds, strict=True)), rows)

    @staticmethod
    def _limit_tables(cur: duckdb.DuckDBPyConnection, since: Any, until: Any) -> None:
        # Temporary views are private to this cursor and shadow the tables by name.
        # A view cannot take parameters; the bounds are datetimes, formatted, never text.
        database = cur.execute("SELECT current_database()").fetchone()[0]
        low, high = (naive_utc(m).strftime("%Y-%m-%d %H:%M:%S.%f") for m in (since, until))
        for table in TABLES:
            cur.execute(
                f'CREATE OR REPLACE TEMP VIEW "{table}" AS SELECT * FROM '
                f'"{database}".main."{table}" WHERE "TimeGenerated" '
                f"BETWEEN TIMESTAMP '{low}' AND TIMESTAMP '{high}'")

    def sql(self, statement: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.cursor()
        try:
            return cur.execute(statement, parameters).fetchall()
        finally:
            cur.close()

    def delete_older_than(self, days: float) -> dict[str, int]:
        """Retention: delete rows whose TimeGenerated is more than `days` old."""
        deleted = {}
        for table in TABLES:
            rows = self.sql(
                f'DELETE FROM "{table}" WHERE "TimeGenerated" < '
                "(now() AT TIME ZONE 'UTC') - to_microseconds(CAST(? * 86400000000 AS BIGINT)) "
                "RETURNING 1",
                [days],
            )
            deleted[table] = len(rows)
        return deleted

    def close(self) -> None:
        with self._lock:
            self._con.close()
        with _open_lock:
            if _open.get(self.path) is self:
                del _open[self.path]


_open: dict[str, TelemetryStore] = {}
_open_lock = threading.Lock()


def open_store(path: str | os.PathLike[str] | None = None) -> TelemetryStore:
    """The process's one store for `path` (default `TELEMETRY_DB`)."""
    key = str(path or default_path())
    with _open_lock:
        store = _open.get(key)
        if store is None:
            store = _open[key] = TelemetryStore(key)
        return store


class BufferedWriter:
    """Collects rows in memory and appends them to the store in large batches.

    Each DuckDB append costs a few milliseconds whatever its size, so a simulation that
    exports once a simulated minute writes through this and flushes now and then.
    """

    def __init__(self, store: TelemetryStore, max_rows: int = 200_000) -> None:
        self.store = store
        self.max_rows = max_rows
        self._rows: dict[str, list[dict[str, Any]]] = {table: [] for table in TABLES}
        self._count = 0
        self._lock = threading.Lock()

    def append(self, table: str, rows: Sequence[dict[str, Any]]) -> int:
        with self._lock:
            self._rows[table].extend(rows)
            self._count += len(rows)
            full = self._count >= self.max_rows
        if full:
            self.flush()
        return len(rows)

    def flush(self) -> int:
        with self._lock:
            pending, self._rows = self._rows, {table: [] for table in TABLES}
            self._count = 0
        return sum(self.store.append(table, rows) for table, rows in pending.items())
