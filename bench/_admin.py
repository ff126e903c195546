"""Admin API on the ingest part's store: endpoint latency over HTTP, and shared queries.

Latency: `create_app(backend=...)` served by uvicorn in a thread on a free local port, timed
by an httpx client (keep-alive, one request at a time). Every measured request misses the
shared-query cache: each one has its own `until=` (a millisecond apart, just after the
store's last event, so every request sees the same data), so its questions are new cache
keys, and a counting wrapper around `LocalBackend(store)` checks that each
request really ran all of its questions. Rounds interleave the five endpoints with two
baselines through the same server: `GET /api/health` (the HTTP stack alone) and a route
added for the bench that runs one plain DuckDB SQL `count(*)` over the last 24 h of
AppTraces (the HTTP stack plus one small query on the same store).

Shared queries: a fresh app with its default cache (TTL 15 s); 100 clients request /stats
with the same `until=` at once; the backend must run each of the endpoint's questions
once. A second wave right after is answered from the cache.

Where the time goes: the same endpoints called on an `AdminService` directly (no HTTP, no
cache), each backend query split into duckdb-kql translation (reading the connection's
schema, then `duckdb_kql.to_sql`) and DuckDB execution of the SQL (`con.sql(...)` and
fetching the rows), which is what `TelemetryStore.kql` does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Uncached p95 of each endpoint on a million events a day, and on the `make run` store.
GOAL_P95_MS = 250.0
GOAL_DEFAULT_P95_MS = 50.0
#: The same endpoints with 30 days of history, against one day.
GOAL_HISTORY_RATIO = 1.25
PREFIX = "/api/admin/integrations"
#: key -> (path, query parameters, AdminService method name)
ENDPOINTS: dict[str, tuple[str, dict[str, str], str]] = {
    "stats": (f"{PREFIX}/stats", {}, "stats"),
    "health": (f"{PREFIX}/health", {}, "health"),
    "sync-activity": (f"{PREFIX}/sync-activity", {"limit": "100"}, "sync_activity"),
    "errors": (f"{PREFIX}/errors", {"limit": "50"}, "errors"),
    "performance": (f"{PREFIX}/performance", {}, "performance"),
}
BASELINES: dict[str, str] = {
    "count_24h": "/bench/count-24h",
    "api_health": "/api/health",
}
COUNT_24H_SQL = 'SELECT count(*) FROM "AppTraces" WHERE "TimeGenerated" > now() - INTERVAL 24 HOUR'
CONCURRENT_ENDPOINT = "stats"
CACHED_REQUESTS = 10


@dataclass(frozen=True)
class AdminSettings:
    warmup_rounds: int
    rounds: int
    clients: int
    profile_repeats: int


FULL = AdminSettings(warmup_rounds=1, rounds=20, clients=100, profile_repeats=3)
QUICK = AdminSettings(warmup_rounds=1, rounds=4, clients=20, profile_repeats=1)


# -- plumbing -----------------------------------------------------------------------------


def _question(text: str) -> str:
    """Which question (or by-tenant form) a rendered query ends with."""
    from integration_monitoring import queries

    found = [name for name in queries.forms() if text.endswith(queries.text(name))]
    return max(found, key=lambda name: len(queries.text(name))) if found else "?"


class CountingBackend:
    """Wraps a backend; records each question asked, its start and end (perf_counter_ns)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[tuple[str, int, int]] = []
        self._lock = threading.Lock()

    def query(self, kql: str, since: dt.datetime, until: dt.datetime) -> Any:
        return self._timed(_question(kql), lambda: self.inner.query(kql, since, until))

    def ask(self, name: str, values: Any) -> Any:
        return self._timed(name, lambda: self.inner.ask(name, values))

    def _timed(self, question: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter_ns()
        try:
            return call()
        finally:
            ended = time.perf_counter_ns()
            with self._lock:
                self.calls.append((question, started, ended))


def _union_ns(spans: list[tuple[int, int]]) -> int:
    """Wall time covered by possibly overlapping spans."""
    total, reach = 0, None
    for start, end in sorted(spans):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


class ProfilingBackend:
    """`LocalBackend.ask`, timed in parts: schema read, `to_sql`, execution + fetch.

    What `TelemetryStore.kql` does for a parameterized question, step by step, except that
    the translation is timed every time (the store translates a text once and keeps it:
    `to_sql_ns` is what that saves per request); LocalBackend's own pass over the rows
    afterwards (null strings to "") is left out (about a millisecond).
    """

    name = "local"

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls: list[dict[str, Any]] = []

    def ask(self, name: str, values: Any) -> Any:
        import duckdb_kql
        from duckdb_kql.engine import schema
        from duckdb_kql.types import kusto_type

        from integration_monitoring import queries
        from integration_monitoring.admin import Answer

        kql, parameters = queries.parameterized(name, values)

        t0 = time.perf_counter_ns()
        cur = self.store.cursor()  # takes the store's lock, sets TimeZone
        try:
            t1 = time.perf_counter_ns()
            tables = schema(cur)
            t2 = time.perf_counter_ns()
            duckdb_kql.to_sql(kql, schema=tables)
            t3 = time.perf_counter_ns()
            sql, bound = self.store._translations.bind(cur, kql, parameters)
            relation = cur.sql(sql, params=bound)
            names = relation.columns
            _kinds = [kusto_type(t) for t in relation.types]  # as TelemetryStore.kql does
            rows = relation.fetchall()
            t4 = time.perf_counter_ns()
        finally:
            cur.close()
        self.calls.append(
            {
                "question": name,
                "cursor_ns": t1 - t0,
                "schema_ns": t2 - t1,
                "to_sql_ns": t3 - t2,
                "execute_ns": t4 - t3,
                "rows": len(rows),
                "kql_chars": len(kql),
                "sql_chars": len(sql),
            }
        )
        return Answer(list(names), rows)


class Server:
    """uvicorn in a thread on a free local port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the
        # protocol says TCP; without it Nagle + delayed ACK add ~40 ms to keep-alive requests
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        from integration_monitoring.app import KEEP_ALIVE_S

        config = uvicorn.Config(app, log_level="warning", access_log=False, backlog=2048,
                                timeout_keep_alive=KEEP_ALIVE_S)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self.sock]},
            daemon=True,
            name="bench-uvicorn",
        )

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def _app(backend: Any, store: Any) -> Any:
    from integration_monitoring.app import create_app

    app = create_app(backend=backend)

    @app.get("/bench/count-24h", include_in_schema=False)
    def count_24h() -> dict[str, int]:  # sync: runs in the thread pool like the endpoints
        return {"count": store.sql(COUNT_24H_SQL)[0][0]}

    return app


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _dist_ms(ns: list[int]) -> dict[str, Any]:
    ms = [x / 1e6 for x in ns]
    return {
        "n": len(ms),
        "p50_ms": statistics.median(ms),
        "p95_ms": _pct(ms, 0.95),
        "max_ms": max(ms),
        "min_ms": min(ms),
    }


def store_end(store: Any) -> dt.datetime:
    """The whole second after the newest AppTraces row: requests use `until` = this + k ms."""
    end = store.sql('SELECT max("TimeGenerated") FROM "AppTraces"')[0][0]
    return end.replace(tzinfo=dt.UTC, microsecond=0) + dt.timedelta(seconds=1)


#: `until` = end + this many ms; each part its own range, so no request hits another's keys
LATENCY_MS, CONCURRENCY_MS, PROFILE_MS = 1, 999, 500


def _until(end: dt.datetime, ms: int) -> str:
    moment = end + dt.timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- latency ------------------------------------------------------------------------------


def latency(s: AdminSettings, store: Any, end: dt.datetime,
            goal_ms: float = GOAL_P95_MS) -> dict[str, Any]:
    import httpx

    from integration_monitoring.admin import LocalBackend

    backend = CountingBackend(LocalBackend(store))
    samples: dict[str, list[int]] = {key: [] for key in (*ENDPOINTS, *BASELINES)}
    backend_wall: dict[str, list[int]] = {key: [] for key in ENDPOINTS}
    backend_sum: dict[str, list[int]] = {key: [] for key in ENDPOINTS}
    questions: dict[str, list[str]] = {}
    not_missed: dict[str, int] = {key: 0 for key in ENDPOINTS}
    offset = LATENCY_MS
    keys = [*BASELINES, *ENDPOINTS]
    assert LATENCY_MS + (s.warmup_rounds + s.rounds) * len(ENDPOINTS) < PROFILE_MS
    with (
        Server(_app(backend, store)) as server,
        httpx.Client(base_url=server.url, timeout=120) as client,
    ):
        for round_ in range(s.warmup_rounds + s.rounds):
            measured = round_ >= s.warmup_rounds
            shift = round_ % len(keys)
            for key in keys[shift:] + keys[:shift]:  # rotate: drift hits every row alike
                if key in BASELINES:
                    path, params = BASELINES[key], {}
                else:
                    path, extra, _ = ENDPOINTS[key]
                    params = {**extra, "until": _until(end, offset)}
                    offset += 1
                before = len(backend.calls)
                started = time.perf_counter_ns()
                response = client.get(path, params=params)
                elapsed = time.perf_counter_ns() - started
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
                if key in BASELINES:
                    if measured:
                        samples[key].append(elapsed)
                    continue
                # (the look for restatements, every ten minutes, is no endpoint's question)
                ran = [call for call in backend.calls[before:] if call[0] != "restatements"]
                names = sorted(name for name, _, _ in ran)
                if key not in questions:  # the first, cold request: its questions
                    questions[key] = names
                elif names != questions[key]:
                    not_missed[key] += 1
                if measured:
                    samples[key].append(elapsed)
                    backend_wall[key].append(_union_ns([(a, b) for _, a, b in ran]))
                    backend_sum[key].append(sum(b - a for _, a, b in ran))

    base_count = _dist_ms(samples["count_24h"])
    base_health = _dist_ms(samples["api_health"])
    rows = []
    for key, (path, params, _) in ENDPOINTS.items():
        d = _dist_ms(samples[key])
        query = "&".join(f"{k}={v}" for k, v in params.items())
        backend_med = statistics.median(backend_wall[key]) / 1e6
        rows.append(
            {
                "endpoint": key,
                "path": path + (f"?{query}" if query else ""),
                "questions": questions[key],
                **d,
                "goal_p95_ms": goal_ms,
                "pass": d["p95_ms"] <= goal_ms,
                "vs_count_24h": d["p50_ms"] / base_count["p50_ms"],
                "vs_api_health": d["p50_ms"] / base_health["p50_ms"],
                "backend_wall_p50_ms": backend_med,
                "backend_sum_p50_ms": statistics.median(backend_sum[key]) / 1e6,
                "backend_share": backend_med / d["p50_ms"],
                "requests_not_all_missed": not_missed[key],
            }
        )
    return {
        "until_base": _iso(end),
        "rounds": s.rounds,
        "warmup_rounds": s.warmup_rounds,
        "rows": rows,
        "baselines": {"count_24h": {"sql": COUNT_24H_SQL, **base_count}, "api_health": base_health},
        "backend_queries": len(backend.calls),
    }


# -- shared queries under concurrency -----------------------------------------------------


async def _wave(url: str, path: str, params: dict[str, str], clients: int) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        # open every connection first, so the wave measures requests, not TCP handshakes
        await asyncio.gather(*(client.get("/api/health") for _ in range(clients)))
        start = asyncio.Event()

        async def one() -> tuple[int, int, str]:
            await start.wait()
            began = time.perf_counter_ns()
            response = await client.get(path, params=params)
            return response.status_code, time.perf_counter_ns() - began, response.text

        tasks = [asyncio.create_task(one()) for _ in range(clients)]
        await asyncio.sleep(0)  # every task is now waiting on `start`
        began = time.perf_counter_ns()
        start.set()
        results = await asyncio.gather(*tasks)
        wall = time.perf_counter_ns() - began
    statuses = [code for code, _, _ in results]
    bodies = {text for _, _, text in results}
    return {
        "wall_ms": wall / 1e6,
        "ok": statuses.count(200),
        "identical_bodies": len(bodies) == 1,
        **_dist_ms([ns for _, ns, _ in results]),
    }


def concurrency(
    s: AdminSettings, store: Any, end: dt.datetime, expected_questions: list[str]
) -> dict[str, Any]:
    import httpx

    from integration_monitoring.admin import LocalBackend

    backend = CountingBackend(LocalBackend(store))
    path, extra, _ = ENDPOINTS[CONCURRENT_ENDPOINT]
    params = {**extra, "until": _until(end, CONCURRENCY_MS)}  # a key nothing used yet
    waves = []
    with Server(_app(backend, store)) as server:
        for label in ("cold cache", "cache warm"):
            before = len(backend.calls)
            wave = asyncio.run(_wave(server.url, path, params, s.clients))
            ran = backend.calls[before:]
            wave.update(
                label=label,
                backend_queries=len(ran),
                by_question={q: sum(1 for n, _, _ in ran if n == q) for q, _, _ in ran},
            )
            waves.append(wave)
        # the same request alone, answered from the cache: what a hit costs without queueing
        before = len(backend.calls)
        hits = []
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for _ in range(CACHED_REQUESTS):
                began = time.perf_counter_ns()
                client.get(path, params=params).raise_for_status()
                hits.append(time.perf_counter_ns() - began)
        cached = {**_dist_ms(hits), "backend_queries": len(backend.calls) - before}
    cold = waves[0]
    expected = len(set(expected_questions))
    return {
        "endpoint": CONCURRENT_ENDPOINT,
        "path": path,
        "params": params,
        "clients": s.clients,
        "cache_ttl_s": 15.0,
        "expected_backend_queries": expected,
        "questions": sorted(set(expected_questions)),
        "waves": waves,
        "cached_alone": cached,
        "backend_queries": cold["backend_queries"],
        "pass": (
            cold["backend_queries"] == expected
            and waves[1]["backend_queries"] == 0
            and all(w["ok"] == s.clients for w in waves)
        ),
        "within_ttl": cold["wall_ms"] + waves[1]["wall_ms"] < 15_000,
    }


# -- where the time goes ------------------------------------------------------------------


def _service(backend: Any, parallel: int | None) -> Any:
    from integration_monitoring.admin import AdminService, SharedQueries

    if parallel is None:
        return AdminService(backend, SharedQueries(ttl_s=0))
    try:
        return AdminService(backend, SharedQueries(ttl_s=0), parallel=parallel)
    except TypeError:  # a service without a pool runs its questions one by one anyway
        return AdminService(backend, SharedQueries(ttl_s=0))


def profile(s: AdminSettings, store: Any, end: dt.datetime) -> dict[str, Any]:
    """Each endpoint on the app's own service (questions side by side) and on one that runs
    them one at a time, where the parts of each query add up to the endpoint's time."""
    from integration_monitoring.admin import parse_filters

    serial_backend, parallel_backend = ProfilingBackend(store), ProfilingBackend(store)
    serial = _service(serial_backend, 1)
    parallel = _service(parallel_backend, None)
    out: dict[str, Any] = {}
    offset = PROFILE_MS
    for key, (_, extra, method) in ENDPOINTS.items():
        per_question: dict[str, list[dict[str, Any]]] = {}
        serial_ns, parallel_ns, parallel_to_sql = [], [], []
        for _ in range(s.profile_repeats):
            for service, backend, times in (
                (serial, serial_backend, serial_ns),
                (parallel, parallel_backend, parallel_ns),
            ):
                offset += 1
                filters = dataclasses.replace(  # every tenant, as an admin reads
                    parse_filters(key, {**extra, "until": _until(end, offset)}), tenants=None)
                before = len(backend.calls)
                started = time.perf_counter_ns()
                getattr(service, method)(filters)
                times.append(time.perf_counter_ns() - started)
                if backend is serial_backend:
                    for call in backend.calls[before:]:
                        per_question.setdefault(call["question"], []).append(call)
                else:
                    parallel_to_sql.append(sum(c["to_sql_ns"] for c in backend.calls[before:]))
        questions = []
        for name, calls in per_question.items():
            med = {
                part: statistics.median(c[part] for c in calls) / 1e6
                for part in ("cursor_ns", "schema_ns", "to_sql_ns", "execute_ns")
            }
            questions.append(
                {
                    "question": name,
                    **{k.replace("_ns", "_ms"): v for k, v in med.items()},
                    "translate_ms": med["schema_ns"] + med["to_sql_ns"],
                    "rows": calls[-1]["rows"],
                    "kql_chars": calls[-1]["kql_chars"],
                    "sql_chars": calls[-1]["sql_chars"],
                }
            )
        translate = sum(q["translate_ms"] for q in questions)
        execute = sum(q["execute_ms"] for q in questions)
        serial_ms = statistics.median(serial_ns) / 1e6
        out[key] = {
            "serial_ms": serial_ms,
            "translate_ms": translate,
            "to_sql_ms": sum(q["to_sql_ms"] for q in questions),
            "schema_ms": sum(q["schema_ms"] for q in questions),
            "execute_ms": execute,
            "other_ms": serial_ms - translate - execute,
            "translate_share": translate / serial_ms if serial_ms else 0.0,
            "parallel_ms": statistics.median(parallel_ns) / 1e6,
            "parallel_to_sql_sum_ms": statistics.median(parallel_to_sql) / 1e6,
            "questions": questions,
        }
    for service in (serial, parallel):
        pool = getattr(service, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)
    return {"repeats": s.profile_repeats, "endpoints": out}


# -- the part -----------------------------------------------------------------------------


def part_default_store(workdir: str, quick: bool) -> dict[str, Any]:
    """The endpoints' uncached latency on what `make run` shows a newcomer: the demo's
    default store (24 h of 8 tenants and 24 integrations), and how long its backfill takes."""
    from pathlib import Path

    from integration_monitoring.demo import run_demo
    from integration_monitoring.store import TelemetryStore

    s = QUICK if quick else FULL
    hours = 2.0 if quick else 24.0
    store = TelemetryStore(Path(workdir) / "default.duckdb")
    try:
        started = time.perf_counter()
        result = run_demo(hours=hours, seed=7, store=store, stdout=None, progress=False)
        backfill_s = time.perf_counter() - started
        lat = latency(s, store, store_end(store), GOAL_DEFAULT_P95_MS)
        rows = store.sql('SELECT count(*) FROM "AppTraces"')[0][0]
    finally:
        store.close()
    return {"hours": hours, "events": result.events, "apptraces_rows": rows,
            "backfill_s": backfill_s, "goal_p95_ms": GOAL_DEFAULT_P95_MS, "latency": lat}


def print_default_store(r: dict[str, Any]) -> None:
    from ._report import table

    lat = r["latency"]
    count = lat["baselines"]["count_24h"]
    print(f"\nAdmin API on the demo's default store ({r['hours']:g} h, {r['events']:,} events, "
          f"{r['apptraces_rows']:,} AppTraces rows, backfilled in {r['backfill_s']:.1f} s; "
          f"goal uncached p95 <= {r['goal_p95_ms']:.0f} ms); plain count p95 "
          f"{count['p95_ms']:.0f} ms")
    print(table(["endpoint", "p50", "p95", "goal", "vs count-24h"], [
        [row["path"].removeprefix(PREFIX), f"{row['p50_ms']:.0f} ms", f"{row['p95_ms']:.0f} ms",
         "PASS" if row["pass"] else "MISS", f"{row['vs_count_24h']:.0f}x"]
        for row in lat["rows"]]))


def part_history(store_path: str, workdir: str, quick: bool,
                 one_day: dict[str, Any]) -> dict[str, Any]:
    """The same endpoints, same 24 h window, when the store holds 30 days (3 when quick) at
    the ingest store's rate: a copy of it with its day written again for each earlier day.
    `one_day` is the ingest store's `latency` part, measured in the same run."""
    import shutil
    from pathlib import Path

    from integration_monitoring.store import TABLES, TelemetryStore, physical

    days = 3 if quick else 30
    path = Path(workdir) / "history.duckdb"
    shutil.copyfile(store_path, path)
    store = TelemetryStore(path)
    try:
        end = store_end(store)
        day_start = end - dt.timedelta(days=1)
        started = time.perf_counter()
        cursor = store.cursor()
        for table in TABLES:
            raw = f'"{physical(table)}"'  # with its kept columns, copied as they are
            for back in range(1, days):
                cursor.execute(
                    f'INSERT INTO {raw} SELECT * REPLACE ("TimeGenerated" - INTERVAL {back} '
                    f'DAY AS "TimeGenerated") FROM {raw} WHERE "TimeGenerated" >= ?',
                    [day_start.replace(tzinfo=None)])
        cursor.execute("CHECKPOINT")
        cursor.close()
        filled_s = time.perf_counter() - started
        rows = store.sql('SELECT count(*) FROM "AppTraces"')[0][0]
        # The daily restatement, at its worst: written 23 h before the end, so status reads
        # back a day, as it does on the one-day store. (The first one reads all 30 days.)
        started = time.perf_counter()
        restated = _restate(store, end - dt.timedelta(hours=23))
        restate_s = time.perf_counter() - started
        lat = latency(QUICK if quick else FULL, store, end)
    finally:
        store.close()
        path.unlink(missing_ok=True)
    before = {row["endpoint"]: row["p95_ms"] for row in one_day["rows"]}
    ratios = {row["endpoint"]: row["p95_ms"] / before[row["endpoint"]] for row in lat["rows"]}
    return {"days": days, "apptraces_rows": rows, "filled_s": filled_s, "latency": lat,
            "p95_vs_one_day": ratios, "goal_ratio": GOAL_HISTORY_RATIO,
            "restated": restated, "restate_s": restate_s}


def _restate(store: Any, written: dt.datetime) -> int:
    """Run the restatement job on `store`, its events written at `written`."""
    from integration_monitoring.admin import LocalBackend, run_restatement
    from integration_monitoring.demo import telemetry_into

    ns = int(written.timestamp() * 1e9)
    telemetry = telemetry_into(store, lambda: ns, "integration-monitoring")
    return run_restatement(LocalBackend(store), telemetry, now=written)


def print_history(r: dict[str, Any]) -> None:
    from ._report import table

    print(f"\nAdmin API with {r['days']} days of history ({r['apptraces_rows']:,} AppTraces rows, "
          f"written in {r['filled_s']:.0f} s), same 24 h window; goal p95 within "
          f"{r['goal_ratio']:g}x of one day")
    print(f"  the daily restatement, written 23 h before the end: {r['restated']} integrations "
          f"in {r['restate_s']:.1f} s (the first reads all {r['days']} days)")
    print(table(["endpoint", "p50", "p95", "p95 vs one day"], [
        [row["path"].removeprefix(PREFIX), f"{row['p50_ms']:.0f} ms",
         f"{row['p95_ms']:.0f} ms", f"{r['p95_vs_one_day'][row['endpoint']]:.2f}x"]
        for row in r["latency"]["rows"]]))


def part_admin(
    store_path: str,
    quick: bool,
    size: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    from integration_monitoring.store import TelemetryStore

    s = QUICK if quick else FULL
    log = log or (lambda _: None)
    store = TelemetryStore(store_path)
    try:
        end = store_end(store)
        rows = store.sql('SELECT count(*) FROM "AppTraces"')[0][0]
        log("admin API: endpoint latency over HTTP")
        lat = latency(s, store, end)
        stats_questions = next(
            r["questions"] for r in lat["rows"] if r["endpoint"] == CONCURRENT_ENDPOINT
        )
        log("admin API: concurrent clients on the shared-query cache")
        conc = concurrency(s, store, end, stats_questions)
        log("admin API: translation vs execution")
        prof = profile(s, store, end)
    finally:
        store.close()
    import uvicorn

    return {
        "store": {**(size or {}), "apptraces_rows": rows, "until_base": _iso(end)},
        "server": f"uvicorn {uvicorn.__version__} in a thread of this process, "
        "create_app(backend=LocalBackend(store)), httpx client, keep-alive",
        "settings": {
            "warmup_rounds": s.warmup_rounds,
            "rounds": s.rounds,
            "clients": s.clients,
            "profile_repeats": s.profile_repeats,
        },
        "goal_p95_ms": GOAL_P95_MS,
        "latency": lat,
        "concurrency": conc,
        "profile": prof,
    }


def print_admin(r: dict[str, Any]) -> None:
    from ._report import table

    st, lat = r["store"], r["latency"]
    size = (
        f"{st['hours']:g} h, {st['tenants']} tenants, {st['integrations']} integrations, "
        if "hours" in st
        else ""
    )
    print(
        f"\nAdmin API on the ingest store ({size}{st['apptraces_rows']:,} AppTraces rows; "
        f"goal p95 <= {r['goal_p95_ms']:.0f} ms)"
    )
    print(
        f"  {r['server']};\n  {lat['rounds']} rounds (+{lat['warmup_rounds']} warm-up) "
        "interleaving endpoints and baselines; each endpoint request has its own until= "
        "(cache miss, checked)\n"
    )
    b = lat["baselines"]
    print(
        table(
            [
                "endpoint",
                "questions",
                "p50",
                "p95",
                "max",
                "goal",
                "vs count-24h",
                "vs /api/health",
                "backend share",
            ],
            [
                [
                    row["path"].removeprefix(PREFIX),
                    str(len(row["questions"])),
                    f"{row['p50_ms']:.0f} ms",
                    f"{row['p95_ms']:.0f} ms",
                    f"{row['max_ms']:.0f} ms",
                    "PASS" if row["pass"] else "MISS",
                    f"{row['vs_count_24h']:.0f}x",
                    f"{row['vs_api_health']:.0f}x",
                    f"{row['backend_share']:.0%}",
                ]
                for row in lat["rows"]
            ]
            + [
                [
                    "baseline: GET /bench/count-24h (plain SQL count)",
                    "-",
                    f"{b['count_24h']['p50_ms']:.1f} ms",
                    f"{b['count_24h']['p95_ms']:.1f} ms",
                    f"{b['count_24h']['max_ms']:.1f} ms",
                    "",
                    "1x",
                    "",
                    "",
                ],
                [
                    "baseline: GET /api/health",
                    "-",
                    f"{b['api_health']['p50_ms']:.1f} ms",
                    f"{b['api_health']['p95_ms']:.1f} ms",
                    f"{b['api_health']['max_ms']:.1f} ms",
                    "",
                    "",
                    "1x",
                    "",
                ],
            ],
        )
    )
    missed = {
        row["endpoint"]: row["requests_not_all_missed"]
        for row in lat["rows"]
        if row["requests_not_all_missed"]
    }
    if missed:
        print(f"  WARNING: requests that did not run all their questions: {missed}")
    print(
        "  backend share: median wall time with a LocalBackend.query running (duckdb-kql "
        "translation + DuckDB; the service runs questions side by side) / p50"
    )

    c = r["concurrency"]
    print(
        f"\n  {c['clients']} concurrent clients, GET {c['path'].removeprefix(PREFIX)}?until="
        f"{c['params']['until']}, the app's default cache (TTL {c['cache_ttl_s']:g} s):"
    )
    print(
        table(
            [
                "wave",
                "backend queries",
                "expected",
                "wall (all)",
                "p50",
                "max",
                "200s",
                "same body",
            ],
            [
                [
                    w["label"],
                    str(w["backend_queries"]),
                    str(c["expected_backend_queries"] if i == 0 else 0),
                    f"{w['wall_ms']:.0f} ms",
                    f"{w['p50_ms']:.0f} ms",
                    f"{w['max_ms']:.0f} ms",
                    f"{w['ok']}/{c['clients']}",
                    "yes" if w["identical_bodies"] else "no",
                ]
                for i, w in enumerate(c["waves"])
            ],
        )
    )
    h = c["cached_alone"]
    print(
        f"  then {h['n']} requests one at a time, same until= (cache hits, "
        f"{h['backend_queries']} backend queries): p50 {h['p50_ms']:.0f} ms, max "
        f"{h['max_ms']:.0f} ms"
    )
    print(
        f"  one backend query per question ({', '.join(c['questions'])}) -> "
        + ("PASS" if c["pass"] else "MISS")
        + ("" if c["within_ttl"] else " (the cold wave outlasted the TTL)")
    )

    p = r["profile"]
    print(
        f"\n  Where the time goes (AdminService called directly, no HTTP, no cache; median of "
        f"{p['repeats']}).\n  serial: questions one at a time, translate = schema read + "
        "duckdb_kql.to_sql, execute = DuckDB runs the SQL and fetches;\n  side by side: the "
        "app's own service (its questions on a pool), to_sql summed over its threads"
    )
    print(
        table(
            [
                "endpoint",
                "serial",
                "translate",
                "(to_sql)",
                "execute",
                "other",
                "translate share",
                "side by side",
                "(to_sql sum)",
            ],
            [
                [
                    key,
                    f"{e['serial_ms']:.0f} ms",
                    f"{e['translate_ms']:.0f} ms",
                    f"{e['to_sql_ms']:.0f} ms",
                    f"{e['execute_ms']:.0f} ms",
                    f"{e['other_ms']:.0f} ms",
                    f"{e['translate_share']:.0%}",
                    f"{e['parallel_ms']:.0f} ms",
                    f"{e['parallel_to_sql_sum_ms']:.0f} ms",
                ]
                for key, e in p["endpoints"].items()
            ],
        )
    )
    print(
        table(
            ["endpoint: question", "schema", "to_sql", "execute", "rows", "KQL chars", "SQL chars"],
            [
                [
                    f"{key}: {q['question']}",
                    f"{q['schema_ms']:.0f} ms",
                    f"{q['to_sql_ms']:.0f} ms",
                    f"{q['execute_ms']:.0f} ms",
                    str(q["rows"]),
                    str(q["kql_chars"]),
                    str(q["sql_chars"]),
                ]
                for key, e in p["endpoints"].items()
                for q in e["questions"]
            ],
        )
    )
