"""The local telemetry store: one DuckDB file whose tables mirror the Log Analytics workspace."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import duckdb_kql
import pyarrow as pa
from duckdb_kql.engine import schema as read_schema
from duckdb_kql.params import bind
from duckdb_kql.types import kusto_type

from .._time import naive_utc
from ._schema import (
    KEPT,
    KEPT_KEYS,
    KQL_TO_DUCKDB,
    TABLES,
    create_statements,
    kept,
    physical,
    text,
)

DEFAULT_PATH = ".data/telemetry.duckdb"

_ARROW = {
    "string": pa.string(), "datetime": pa.timestamp("us"), "int": pa.int32(),
    "long": pa.int64(), "real": pa.float64(), "dynamic": pa.string(), "bool": pa.bool_(),
}


class StoreLocked(duckdb.IOException):
    """Another process holds the store's file: DuckDB lets one process open it at a time."""


_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")


def _locked_message(path: str, error: str) -> str:
    holder = "another process"
    found = _LOCK_HOLDER.search(error)
    if found:
        pid = found["pid"]
        try:  # the command line says more than the interpreter's path (Linux only)
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            program = " ".join(command.decode(errors="replace").split()) or found["program"]
        except OSError:
            program = found["program"]
        if len(program) > 120:
            program = program[:119] + "…"
        holder = f"another process (PID {pid}: {program})"
    return (f"the local telemetry store {os.path.abspath(path)} is locked by {holder}; "
            "one process at a time can use it: stop that process or set TELEMETRY_DB to "
            "another file")


def _connect(path: str) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb_kql.connect(path)
    except duckdb.IOException as error:
        if "Could not set lock" in str(error):
            raise StoreLocked(_locked_message(path, str(error))) from error
        raise
    con.execute("SET enable_progress_bar = false")  # a long migration draws on the terminal
    return con


def _invalidated(error: BaseException) -> bool:
    """DuckDB gives up on a database after a fatal error (a checkpoint that could not be
    written, on a full disk); only a new connection to the file works again."""
    return isinstance(error, duckdb.FatalException) or (
        isinstance(error, duckdb.Error) and "database has been invalidated" in str(error))


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
    (`open_store`) and every thread works on its own cursor. Opening a file another
    process holds raises `StoreLocked` at once. A failed write (a full disk) leaves the
    data as it was; if DuckDB gave up on the database over it, the next call reconnects.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = str(path or default_path())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._con = _connect(self.path)
        self._lock = threading.Lock()
        self._broken = False
        self._translations = _Translations()
        _migrate(self._con)
        for statement in create_statements():
            self._con.execute(statement)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._broken:
                self._reconnect()
            cur = self._con.cursor()
        with self._guard():
            cur.execute("SET TimeZone='UTC'")
        return cur

    def _reconnect(self) -> None:
        try:
            self._con.close()
        except duckdb.Error:
            pass
        self._con = _connect(self.path)  # replays the write-ahead log; raises if it cannot
        self._broken = False

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except duckdb.Error as error:
            if _invalidated(error) and self.path != ":memory:":
                with self._lock:
                    self._broken = True
            raise

    def append(self, table: str, rows: Sequence[dict[str, Any]]) -> int:
        """Insert rows (dicts keyed by column name; missing columns are NULL)."""
        if not rows:
            return 0
        columns = TABLES[table]
        given = set().union(*rows)  # most of the 40-odd columns are in no row: NULLs
        batch = pa.table({
            name: pa.array([row.get(name) for row in rows], type=_ARROW[kind])
            if name in given else pa.nulls(len(rows), type=_ARROW[kind])
            for name, kind in columns
        })
        cur = self.cursor()
        try:
            with self._guard():
                cur.register("_batch", batch)
                casts = ", ".join(f'CAST("{name}" AS {KQL_TO_DUCKDB[kind]}) AS "{name}"'
                                  for name, kind in columns)
                names = ", ".join(f'"{name}"' for name, _ in columns)
                parsed, values, kept_columns = _KEEPING[table]
                cur.execute(f'INSERT INTO "{physical(table)}" ({names}, {kept_columns}) '
                            f'SELECT {casts}, {values} '
                            f'FROM (SELECT *, {parsed} AS _kept FROM _batch)')
        finally:
            cur.close()
        return len(rows)

    def kql(self, query: str, *, parameters: Mapping[str, Any] | None = None,
            timespan: tuple[Any, Any] | None = None, now: Any = None) -> QueryResult:
        """Run KQL with duckdb-kql; the same text Log Analytics would run.

        `parameters` are the values of the query's `declare query_parameters`: such a text
        is translated once and each call binds its own values. `timespan` limits every
        table to [since, until], as the query API's timespan and an alert rule's window do;
        `now` fixes what `now()` and `ago()` mean.
        """
        cur = self.cursor()
        try:
            with self._guard():
                if timespan is not None:
                    self._limit_tables(cur, *timespan)
                if parameters is not None and now is None and timespan is None:
                    # (its SQL reads the physical tables, which a timespan's views do not
                    # narrow)
                    sql, values = self._translations.bind(cur, query, parameters)
                    # execute, not sql(): no relation object to build for a one-off answer
                    # (a third of a small question's time)
                    cur.execute(sql, values)
                    names = [column[0] for column in cur.description]
                    kinds = [kusto_type(column[1]) for column in cur.description]
                    rows = cur.fetchall()
                else:
                    relation = duckdb_kql.query(cur, query, dict(parameters or {}) or None,
                                                query_now=now)
                    names = relation.columns
                    kinds = [kusto_type(t) for t in relation.types]
                    rows = relation.fetchall()
        finally:
            cur.close()
        return QueryResult(list(zip(names, kinds, strict=True)), rows)

    def translation(self, query: str) -> str:
        """The SQL a parameterized KQL text runs as (translated once, then kept)."""
        cur = self.cursor()
        try:
            with self._guard():
                return self._translations.get(cur, query).text
        finally:
            cur.close()

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
            with self._guard():
                return cur.execute(statement, parameters).fetchall()
        finally:
            cur.close()

    def delete_older_than(self, days: float) -> dict[str, int]:
        """Retention: delete rows whose TimeGenerated is more than `days` old."""
        deleted = {}
        for table in TABLES:
            rows = self.sql(
                f'DELETE FROM "{physical(table)}" WHERE "TimeGenerated" < '
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


#: ... and as text: what duckdb-kql writes for `tostring()` of a JSON value.
_AS_TEXT = "coalesce({} ->> '$', '')"


def _keeping(keys: tuple[str, ...]) -> tuple[str, str, str]:
    """For an INSERT: every kept key parsed out of one row's JSON at once (a list), the
    kept columns' values from it (JSON, then text), and those columns' names."""
    parsed = ("json_extract(TRY_CAST(\"Properties\" AS JSON), ["
              + ", ".join(f"'$.{key}'" for key in keys) + "])")
    items = [f"_kept[{i}]" for i in range(1, len(keys) + 1)]
    values = ", ".join([*items, *(_AS_TEXT.format(item) for item in items)])
    columns = ", ".join([*(f'"{kept(key)}"' for key in keys), *(f'"{text(key)}"' for key in keys)])
    return parsed, values, columns


_KEEPING = {table: _keeping(keys) for table, keys in KEPT.items()}


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    """A file written before tables kept keys: its tables become the physical ones, with the
    kept keys filled in once; a file missing a newer kept key gains it the same way."""
    kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables "
                             "WHERE table_schema = 'main'").fetchall())
    for table in TABLES:
        if kinds.get(table) == "BASE TABLE" and physical(table) not in kinds:
            con.execute(f'ALTER TABLE "{table}" RENAME TO "{physical(table)}"')
            kinds[physical(table)] = "BASE TABLE"
        if physical(table) not in kinds:
            continue
        have = {row[0] for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
            [physical(table)]).fetchall()}
        # a key the table no longer keeps: its column would go stale, so it goes
        for column in sorted(have - {kept(key) for key in KEPT[table]}
                             - {text(key) for key in KEPT[table]}):
            if column.startswith(("_kept_", "_text_")):
                con.execute(f'ALTER TABLE "{physical(table)}" DROP COLUMN "{column}"')
        missing = [key for key in KEPT[table] if kept(key) not in have]
        for key in missing:
            con.execute(f'ALTER TABLE "{physical(table)}" ADD COLUMN "{kept(key)}" JSON')
        if missing:
            fill = ", ".join(f'"{kept(key)}" = json_extract(TRY_CAST("Properties" AS JSON), '
                             f"'$.{key}')" for key in missing)
            con.execute(f'UPDATE "{physical(table)}" SET {fill}')
        untexted = [key for key in KEPT[table] if text(key) not in have]
        for key in untexted:
            con.execute(f'ALTER TABLE "{physical(table)}" ADD COLUMN "{text(key)}" VARCHAR')
        if untexted:
            fill = ", ".join(f'"{text(key)}" = ' + _AS_TEXT.format(f'"{kept(key)}"')
                             for key in untexted)
            con.execute(f'UPDATE "{physical(table)}" SET {fill}')


#: What the translation reads from the JSON, and what a kept column holds instead.
_EXTRACT = re.compile(r"""json_extract\("Properties", '\$\.([A-Za-z_][A-Za-z0-9_]*)'\)""")
_SOURCE = re.compile('FROM "(' + "|".join(TABLES) + ')"')
_KEPT_AS_TEXT = re.compile(re.escape(_AS_TEXT.format('"_kept_@"')).replace("@", "(" + "|".join(
    KEPT_KEYS) + ")"))


def _read_kept(sql: str) -> str:
    """The SQL reading the physical tables and their kept columns instead of parsing JSON.

    Each kept column is the very value `json_extract` would give for its row, so wherever
    the column travels with `Properties` (every `*` and every column list the translation
    writes from the schema) the answer is the same. Where it does not (a `summarize` that
    keeps `Properties` alone), the SQL names a column that is not there and DuckDB refuses
    it: the caller then runs the plain translation."""
    sql = _EXTRACT.sub(lambda m: f'"{kept(m.group(1))}"' if m.group(1) in KEPT_KEYS
                       else m.group(0), sql)
    # and `tostring()` of a kept value reads its text, kept as well, parsing nothing
    sql = _KEPT_AS_TEXT.sub(lambda m: f'"{text(m.group(1))}"', sql)
    return _SOURCE.sub(lambda m: f'FROM "{physical(m.group(1))}"', sql)


#: duckdb-kql converts a value by mapping a lambda over a one-item list (`tolong`,
#: `todouble`, ...): `list_transform(["col"], lambda _v: BODY)[1]`.
_ONE_ITEM_MAP = re.compile(r'list_transform\(\[("[A-Za-z0-9_]+")\], lambda _v: ')


def _inline_conversions(sql: str) -> str:
    """Each one-item `list_transform` of a column replaced by its lambda's body applied to
    the column: the same value (the lambda applied to the one item, NULL included) without a
    list built and mapped per row, which cost more than the rest of a counting question. A
    body that binds `_v` again, or quotes it, is left as it is."""
    out: list[str] = []
    done = 0
    while (found := _ONE_ITEM_MAP.search(sql, done)) is not None:
        end = _closing(sql, found.end())
        body = sql[found.end():end]
        if sql.startswith("[1]", end + 1) and "lambda _v" not in body and "'_v" not in body:
            out.append(sql[done:found.start()])
            out.append("(" + re.sub(r"\b_v\b", found.group(1), body) + ")")
            done = end + 4
        else:
            out.append(sql[done:found.end()])
            done = found.end()
    out.append(sql[done:])
    return "".join(out)


def _closing(sql: str, start: int) -> int:
    """The index of the `)` that closes the parenthesis opened just before `start`."""
    depth, quoted = 1, False
    for index in range(start, len(sql)):
        char = sql[index]
        if char == "'":
            quoted = not quoted  # '' inside a literal toggles twice
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if not depth:
                return index
    raise ValueError("unbalanced SQL")


class _Translations:
    """SQL for parameterized KQL texts, translated once per text: translating a question
    costs more than running it on a day of telemetry, and its text never changes."""

    def __init__(self, size: int = 256) -> None:
        self._sql: dict[str, Any] = {}
        self._size = size
        self._lock = threading.Lock()

    def get(self, cur: duckdb.DuckDBPyConnection, query: str) -> Any:
        """The translation of `query`, made on first use."""
        with self._lock:
            sql = self._sql.get(query)
        if sql is None:
            sql = self._translate(cur, query)
            with self._lock:
                if len(self._sql) >= self._size:
                    self._sql.pop(next(iter(self._sql)))
                self._sql[query] = sql
        return sql

    def bind(self, cur: duckdb.DuckDBPyConnection, query: str,
             parameters: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The SQL to run and its placeholders' values."""
        sql = self.get(cur, query)
        values, unbound = bind(list(sql.declarations), dict(parameters))
        if unbound:
            raise duckdb_kql.KqlSchemaError(", ".join(unbound),
                                            hint="declared query parameter with no value")
        values.update(sql.parameters)
        return sql.text, {slot: v for slot, v in values.items() if slot in sql.slots}

    @staticmethod
    def _translate(cur: duckdb.DuckDBPyConnection, query: str) -> Any:
        """The translation, reading kept columns when that gives the same columns."""
        schema = read_schema(cur)
        wider = {**schema, **{table: [*schema[table], *(kept(k) for k in KEPT[table]),
                                      *(text(k) for k in KEPT[table])]
                              for table in TABLES if table in schema}}
        plain = duckdb_kql.to_sql(query, schema=schema)
        plain.text = str(plain)
        if "Properties =" in query or "Properties=" in query:
            return plain  # a query that replaces Properties: kept values would be stale
        fast = duckdb_kql.to_sql(query, schema=wider)
        fast.text = _inline_conversions(_read_kept(str(fast)))
        try:
            columns = cur.execute(f"DESCRIBE {fast.text}", _dummies(fast)).fetchall()
        except duckdb.Error:
            return plain
        if [row[0] for row in columns] != [row[0] for row in cur.execute(
                f"DESCRIBE {plain.text}", _dummies(plain)).fetchall()]:
            return plain
        return fast


def _dummies(sql: Any) -> dict[str, Any]:
    """Placeholder values of the declared types, enough for DuckDB to plan the SQL."""
    values, _ = bind(list(sql.declarations), {d.name: _DUMMY[d.type] for d in sql.declarations})
    values.update(sql.parameters)
    return {slot: v for slot, v in values.items() if slot in sql.slots}


_DUMMY: dict[str, Any] = {"string": "", "long": 0, "int": 0, "real": 0.0, "bool": False,
                          "datetime": "2000-01-01T00:00:00Z", "dynamic": [],
                          "timespan": "00:00:01"}


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
    """Collects rows in memory and appends them to the store in batches, and keeps them
    while the store cannot take them.

    Each DuckDB append costs a few milliseconds whatever its size, so a simulation that
    exports once a simulated minute writes through this with a large `max_rows` and
    flushes now and then; the configured local pipeline writes through it with
    `max_rows=1`. When a write fails (a full disk, a file that went away) the rows stay
    buffered and the write is tried again on the next append at most every
    `retry_interval_s`, and on `flush()`; at most `max_pending` rows are kept, the oldest
    of the largest table going first, each one counted. The failure and the recovery are
    reported to `losses` when given (the pipeline's `Losses`, so its Telemetry's `stats()`
    shows them under `problems` and `store`, and stderr hears them); without it only
    `dropped` and `state()` tell. The store never looks for a Telemetry itself.
    """

    def __init__(self, store: TelemetryStore, max_rows: int = 200_000, *,
                 max_pending: int | None = None, losses: Any = None,
                 retry_interval_s: float = 1.0) -> None:
        self.store = store
        self.max_rows = max(1, max_rows)
        self.max_pending = max(self.max_rows, max_pending or max(2 * self.max_rows, 50_000))
        self.retry_interval_s = retry_interval_s
        self.failed_writes = 0
        self.dropped = dict.fromkeys(TABLES, 0)
        self.error: str | None = None
        self._rows: dict[str, list[dict[str, Any]]] = {table: [] for table in TABLES}
        self._count = 0
        self._last_attempt = 0.0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one write at a time keeps failures in order
        self._losses = losses
        if losses is not None:
            losses.watch("store", self.state)

    @property
    def pending(self) -> int:
        """Rows held in memory, not yet in the store."""
        return self._count

    def state(self) -> dict[str, Any]:
        return {"path": self.store.path, "pending_rows": self._count,
                "failed_writes": self.failed_writes, "error": self.error}

    def append(self, table: str, rows: Sequence[dict[str, Any]]) -> int:
        """Buffer rows (never raises for the store's sake); returns how many were taken."""
        with self._lock:
            self._rows[table].extend(rows)
            self._count += len(rows)
            overflow = self._trim()
            due = self._count >= self.max_rows and (
                self.error is None
                or time.monotonic() - self._last_attempt >= self.retry_interval_s)
        self._count_dropped(overflow)
        if due:
            self.flush()
        return len(rows)

    def flush(self) -> int:
        """Write everything buffered; returns the rows written. Rows the store refuses stay
        buffered (see `pending`, `error`)."""
        with self._write_lock:
            with self._lock:
                pending, self._rows = self._rows, {table: [] for table in TABLES}
                self._count = 0
                self._last_attempt = time.monotonic()
            written = 0
            for table, rows in pending.items():
                if not rows:
                    continue
                try:
                    written += self.store.append(table, rows)
                except Exception as error:
                    self.failed_writes += 1
                    self.error = f"{type(error).__name__}: {' '.join(str(error).split())}"
                    self._keep({name: left for name, left in pending.items() if left})
                    self._failed()
                    return written
                pending[table] = []
            if written and self.error is not None:
                self._recovered()
            return written

    def done(self, timeout_millis: int | None = None) -> bool:
        """Flush; True when nothing is left in memory (for `Telemetry.add_flusher`)."""
        self.flush()
        return self._count == 0

    def close(self) -> None:
        """Flush a last time; rows the store still refuses are counted as lost."""
        self.flush()
        with self._lock:
            left, self._rows = self._rows, {table: [] for table in TABLES}
            self._count = 0
        self._count_dropped({table: len(rows) for table, rows in left.items()}, "shutdown")

    # -- failure handling -----------------------------------------------------------------

    def _keep(self, unwritten: dict[str, list[dict[str, Any]]]) -> None:
        """Put rows a failed write could not store back in front of newer ones."""
        with self._lock:
            for table, rows in unwritten.items():
                self._rows[table][:0] = rows
                self._count += len(rows)
            overflow = self._trim()
        self._count_dropped(overflow)

    def _trim(self) -> dict[str, int]:
        """Under the lock: drop the oldest rows of the largest table beyond max_pending."""
        dropped: dict[str, int] = {}
        while self._count > self.max_pending:
            table = max(self._rows, key=lambda name: len(self._rows[name]))
            cut = min(self._count - self.max_pending, len(self._rows[table]))
            del self._rows[table][:cut]
            self._count -= cut
            dropped[table] = dropped.get(table, 0) + cut
        return dropped

    def _count_dropped(self, dropped: dict[str, int], reason: str = "store_failed") -> None:
        if not any(dropped.values()):
            return
        losses = self._losses
        detail = f"the local store {self.store.path} refused writes: {self.error}"
        for table, count in dropped.items():
            self.dropped[table] += count
            if losses is None or not count:
                continue
            if table == "AppTraces":
                losses.logs_lost(reason, count, detail)
            else:
                losses.metric_points_lost(reason, count, detail)

    def _failed(self) -> None:
        losses = self._losses
        if losses is not None:
            losses.problem("store", (
                f"cannot write the local store {self.store.path} ({self.error}); rows are "
                f"kept in memory (at most {self.max_pending}) and written when it works again"))

    def _recovered(self) -> None:
        self.error = None
        losses = self._losses
        if losses is not None:
            losses.resolved("store", f"the local store {self.store.path} takes writes again")

