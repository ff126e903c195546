"""Dashboard load: many simulated dashboard viewers against the app on a real uvicorn server.

The server runs in its own process (`python -m bench._load --store PATH ...`), so the
clients' event loop and the app do not share a GIL: it backfills a demo store (the
`make run` workload, 24 h of 8 tenants and 24 integrations by default), keeps the demo
running live so data keeps arriving, wraps `LocalBackend(store)` in the admin part's
`CountingBackend`, and serves `create_app(backend=...)` on 127.0.0.1 with
ADMIN_API_TOKEN set (the clients send it as a bearer token).

Each simulated viewer does what dashboard/dashboard.js does in a browser: it loads the page
and its assets, then (reload()) fetches the six panels and opens the Server-Sent Events
stream; a `snapshot` whose fingerprint is new makes it fetch the six panels again (a
refresh asked for while one runs is queued, once), the first snapshot after a reload is
skipped, and a stream that ends (`bye`) is reopened after the server's `retry:` delay.
Every viewer has its own httpx.AsyncClient: one keep-alive connection for its fetches
(the page fires the six at once; over one connection they go one after another) and one
for its stream, which an open EventSource holds. Viewers start spread over a few seconds.

Errors: any non-2xx answer, transport error or stream that ends without `bye`, listed by
request kind. A request on a reused connection that the server closed as it went out
(its idle keep-alive timeout) is counted too, then resent once, as browsers do.

Baseline, measured in the same run on the same server just before: one viewer alone
reloading the page back to back (the same requests, one at a time, so each kind gets many
samples with nothing else on the server). Under load every request is timed per kind
(p50/p95/p99) and set against the baseline's; backend queries are counted on the server in
both phases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from ._admin import PREFIX, CountingBackend, Server, _pct
from ._report import ROOT, conditions, cpu_times

TOKEN_SETTING = "ADMIN_API_TOKEN"
QUERIES_ROUTE = "/bench/backend-queries"
STREAM = f"{PREFIX}/stream"
#: What the page loads before its refresh: index.html's files in document order, then what
#: its script asks first.
PAGE = (
    ("page", "/dashboard", "text/html"),
    ("dashboard.css", "/dashboard/static/dashboard.css", "text/css"),
    ("chart.umd.js", "/dashboard/static/vendor/chart.umd.js", "*/*"),
    ("dashboard.js", "/dashboard/static/dashboard.js", "*/*"),
    ("access.json", "/dashboard/access.json", "application/json"),  # how to sign calls
    ("me", "/api/admin/me", "application/json"),  # who is signed in
)
CHART_JS = ROOT / "integration_monitoring" / "admin" / "dashboard" / "vendor" / "chart.umd.js"
#: What refresh() fetches (dashboard.js), with the parameters it adds when no filter is set.
PANELS = (
    ("stats", f"{PREFIX}/stats", {}),
    ("health", f"{PREFIX}/health", {}),
    ("sync-activity", f"{PREFIX}/sync-activity", {"limit": "100"}),
    ("errors", f"{PREFIX}/errors", {"limit": "50"}),
    ("performance", f"{PREFIX}/performance", {}),
    ("alerts", "/api/admin/alerts", {"status": "active"}),
)
REFRESH = "refresh (6 panels)"
STREAM_OPEN = "stream: open"
FIRST_SNAPSHOT = "stream: first snapshot"
API = "all 6 panels"
FETCH_TIMEOUT = 30.0
#: The server writes at least every 15 s (a snapshot or a keep-alive comment).
STREAM_READ_TIMEOUT = 45.0
GRACE_S = 30.0

#: What a request gets when the server closes an idle keep-alive connection under it.
RACE_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


@dataclass(frozen=True)
class LoadSettings:
    clients: int
    seconds: float
    ramp_s: float
    baseline_s: float
    hours: float
    tenants: int
    integrations: int


FULL = LoadSettings(clients=200, seconds=60, ramp_s=5, baseline_s=20, hours=24, tenants=8,
                    integrations=24)
QUICK = LoadSettings(clients=20, seconds=10, ramp_s=2, baseline_s=5, hours=2, tenants=8,
                     integrations=24)


# -- the server process -------------------------------------------------------------------


def _serve(argv: list[str]) -> int:
    """Backfill, go live, serve; print one JSON line when ready; stop when stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m bench._load")
    parser.add_argument("--store", required=True)
    parser.add_argument("--hours", type=float, required=True)
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--integrations", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    from integration_monitoring.admin import LocalBackend
    from integration_monitoring.app import create_app
    from integration_monitoring.demo import run_demo
    from integration_monitoring.store import TelemetryStore

    store = TelemetryStore(args.store)
    stop, live = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def demo() -> None:
        try:
            run_demo(hours=args.hours, seed=args.seed, tenants=args.tenants,
                     integrations=args.integrations, live=True, store=store, stdout=None,
                     progress=False, stop=stop, on_live=live.set)
        except BaseException as error:  # reported by the main thread
            failed.append(error)
            live.set()

    started = time.perf_counter()
    thread = threading.Thread(target=demo, name="bench-demo", daemon=True)
    thread.start()
    live.wait()
    if failed:
        raise failed[0]
    backfill_s = time.perf_counter() - started
    rows = store.sql('SELECT count(*) FROM "AppTraces"')[0][0]

    backend = CountingBackend(LocalBackend(store))
    app = create_app(backend=backend)

    @app.get(QUERIES_ROUTE, include_in_schema=False)
    def backend_queries() -> dict[str, Any]:
        with backend._lock:
            names = [name for name, _, _ in backend.calls]
        return {"total": len(names), "byQuestion": dict(Counter(names))}

    try:
        with Server(app) as server:
            print(json.dumps({"url": server.url, "backfill_s": backfill_s,
                              "apptraces_rows": rows, "pid": os.getpid()}), flush=True)
            sys.stdin.read()  # the parent closes it to stop us
    finally:
        stop.set()
        thread.join(15)
        store.close()
    return 0


class _ServerProcess:
    def __init__(self, s: LoadSettings, token: str, workdir: str) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("APPLICATIONINSIGHTS_", "LOG_ANALYTICS_"))}
        env[TOKEN_SETTING] = token
        env["TELEMETRY_DB"] = str(Path(workdir) / "default.duckdb")  # never the user's store
        self.stderr = open(Path(workdir) / "server.stderr", "w+")  # noqa: SIM115 - closed below
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench._load", "--store", str(Path(workdir) / "load.duckdb"),
             "--hours", str(s.hours), "--tenants", str(s.tenants),
             "--integrations", str(s.integrations)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, text=True)
        self.info: dict[str, Any] = {}

    def wait_ready(self, timeout_s: float = 300.0) -> dict[str, Any]:
        timer = threading.Timer(timeout_s, self.proc.kill)  # readline has no timeout
        timer.start()
        try:
            for line in self.proc.stdout:
                try:
                    info = json.loads(line)
                except ValueError:
                    continue
                if isinstance(info, dict) and "url" in info:
                    self.info = info
                    return info
        finally:
            timer.cancel()
        raise RuntimeError(f"the load server did not start:\n{self.stderr_tail()}")

    def stderr_tail(self) -> str:
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()[-3000:]

    def cpu_s(self) -> float | None:
        """User + system CPU seconds of the server process so far."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        finally:
            self.stderr.close()


# -- the viewers --------------------------------------------------------------------------


class Recorder:
    """Latencies per request kind, errors by kind, and what the streams delivered."""

    def __init__(self) -> None:
        self.ns: dict[str, list[int]] = defaultdict(list)
        self.bytes: dict[str, int] = Counter()
        self.errors: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.error_samples: list[dict[str, Any]] = []

    def ok(self, kind: str, ns: int, size: int = 0) -> None:
        self.ns[kind].append(ns)
        self.bytes[kind] += size

    def error(self, kind: str, what: str, **detail: Any) -> None:
        self.errors[f"{kind}: {what}"] += 1
        if len(self.error_samples) < 20:
            self.error_samples.append({"kind": kind, "what": what, **detail})


class Viewer:
    """One dashboard tab (see the module's docstring for what it does and when)."""

    FRESH = object()

    def __init__(self, url: str, token: str, rec: Recorder, tls: ssl.SSLContext,
                 assets: tuple[tuple[str, str, str], ...]) -> None:
        self.rec = rec
        self.assets = assets
        # two connections: the stream holds one while fetches go over the other
        self.http = httpx.AsyncClient(
            base_url=url, verify=tls, headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
            timeout=httpx.Timeout(FETCH_TIMEOUT, connect=10.0))
        self.stream_timeout = httpx.Timeout(FETCH_TIMEOUT, read=STREAM_READ_TIMEOUT)
        self.stopping = asyncio.Event()
        self.last_fingerprint: object = self.FRESH
        self.refreshing: asyncio.Task[None] | None = None
        self.pending = False
        self.last_fetch_done: float | None = None  # when the fetch connection was last used

    async def run(self, start_at: float, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(max(0.0, start_at - loop.time()))
            for kind, path, accept in self.assets:
                await self._get(kind, path, {}, accept)
            # reload(): the panels and the stream at once
            self.last_fingerprint = self.FRESH
            self.request_refresh()
            stream = asyncio.create_task(self._stream())
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            self.stopping.set()
            stream.cancel()  # an open stream at the end is not an error
            await asyncio.gather(stream, return_exceptions=True)
            if self.refreshing is not None:
                await self.refreshing  # a refresh under way finishes and is counted
        finally:
            await self.http.aclose()

    async def reload_until(self, deadline: float) -> None:
        """The baseline: reload the page back to back, one request at a time (assets, the
        six panels, then the stream until its first snapshot), so every kind is sampled
        often with nothing else on the server."""
        loop = asyncio.get_running_loop()
        try:
            while loop.time() < deadline:
                self.last_fingerprint = self.FRESH  # as reload(): its first snapshot is skipped
                for kind, path, accept in self.assets:
                    await self._get(kind, path, {}, accept)
                await self._refresh_once()
                self.rec.events["refreshes"] += 1
                await self._stream(once=True)
        finally:
            await self.http.aclose()

    async def _get(self, kind: str, path: str, params: dict[str, str],
                   accept: str = "application/json") -> bool:
        loop = asyncio.get_running_loop()
        idle = None if self.last_fetch_done is None else loop.time() - self.last_fetch_done
        began = time.perf_counter_ns()
        for attempt in (1, 2):
            try:
                response = await self.http.get(path, params=params, headers={"Accept": accept})
                break
            except httpx.HTTPError as error:
                # The server closed the idle keep-alive connection as this request went out;
                # a browser resends such a request on a new connection, and so do we.
                race = attempt == 1 and idle is not None and isinstance(error, RACE_ERRORS)
                what = type(error).__name__ + (" (keep-alive race, resent)" if race else "")
                self.rec.error(kind, what, message=str(error)[:200], idle_before_s=idle,
                               after_ms=(time.perf_counter_ns() - began) / 1e6)
                if not race:
                    return False
            finally:
                self.last_fetch_done = loop.time()
        elapsed = time.perf_counter_ns() - began  # what the page waited, resend included
        if 200 <= response.status_code < 300:
            self.rec.ok(kind, elapsed, len(response.content))
            return True
        self.rec.error(kind, f"HTTP {response.status_code}")
        return False

    def request_refresh(self) -> None:
        if self.stopping.is_set():
            return
        if self.refreshing is not None and not self.refreshing.done():
            self.pending = True  # the one running was asked for an older view
            return
        self.refreshing = asyncio.create_task(self._refresh())

    async def _refresh_once(self) -> None:
        began = time.perf_counter_ns()
        ok = True
        for kind, path, params in PANELS:
            ok &= await self._get(kind, path, params)
        if ok:
            self.rec.ok(REFRESH, time.perf_counter_ns() - began)

    async def _refresh(self) -> None:
        while True:
            await self._refresh_once()
            self.rec.events["refreshes"] += 1
            if not self.pending or self.stopping.is_set():
                return
            self.pending = False
            self.rec.events["refreshes queued behind another"] += 1

    async def _stream(self, once: bool = False) -> None:
        """EventSource; with `once`, only until the first snapshot (then it closes)."""
        retry_s = 3.0  # until the server says otherwise
        while not self.stopping.is_set():
            began = time.perf_counter_ns()
            said_bye = False
            try:
                async with self.http.stream(
                    "GET", STREAM, timeout=self.stream_timeout,
                    headers={"Accept": "text/event-stream", "Cache-Control": "no-cache"},
                ) as response:
                    if not 200 <= response.status_code < 300:
                        await response.aread()
                        self.rec.error("stream", f"HTTP {response.status_code}")
                    else:
                        self.rec.ok(STREAM_OPEN, time.perf_counter_ns() - began)
                        self.rec.events["streams opened"] += 1
                        event, data, first = "message", [], True
                        async for line in response.aiter_lines():
                            if line:
                                if line.startswith(":"):
                                    self.rec.events["keep-alive comments"] += 1
                                    continue
                                field, _, value = line.partition(":")
                                value = value.removeprefix(" ")
                                if field == "event":
                                    event = value
                                elif field == "data":
                                    data.append(value)
                                elif field == "retry" and value.isdigit():
                                    retry_s = int(value) / 1000
                                continue
                            if data:  # a blank line dispatches the event, if it has data
                                if event == "snapshot":
                                    if first:
                                        self.rec.ok(FIRST_SNAPSHOT, time.perf_counter_ns() - began)
                                        first = False
                                    self._snapshot("\n".join(data))
                                    if once:
                                        return
                                elif event == "bye":
                                    said_bye = True
                                    self.rec.events["streams renewed (bye)"] += 1
                                else:
                                    self.rec.error("stream", f"event {event}")
                            event, data = "message", []
                        if not said_bye:
                            self.rec.error("stream", "ended without bye")
            except httpx.HTTPError as error:
                self.rec.error("stream", type(error).__name__, message=str(error)[:200],
                               after_ms=(time.perf_counter_ns() - began) / 1e6)
            if once:
                return
            # EventSource reconnects after the retry delay
            try:
                await asyncio.wait_for(self.stopping.wait(), retry_s)
            except TimeoutError:
                pass

    def _snapshot(self, data: str) -> None:
        self.rec.events["snapshots"] += 1
        try:
            fingerprint = json.loads(data)["fingerprint"]
        except (ValueError, KeyError, TypeError):
            self.rec.error("stream", "unreadable snapshot")
            return
        first = self.last_fingerprint is self.FRESH  # reload() has just fetched everything
        if fingerprint == self.last_fingerprint:
            self.rec.events["snapshots unchanged (renewed stream)"] += 1
            return
        self.last_fingerprint = fingerprint
        if first:
            self.rec.events["first snapshots skipped"] += 1
        else:
            self.request_refresh()


async def _loop_lag(stop: asyncio.Event, lags: list[float], every_s: float = 0.1) -> None:
    """How late the clients' event loop wakes up: when high, latencies include our own lag."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + every_s
        await asyncio.sleep(every_s)
        lags.append(max(0.0, loop.time() - due) * 1000)


async def _backend_queries(url: str, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        response = await http.get(QUERIES_ROUTE)
        response.raise_for_status()
        return response.json()


async def _phase(url: str, token: str, clients: int, seconds: float, ramp_s: float,
                 assets: tuple[tuple[str, str, str], ...], cpu: Callable[[], float | None],
                 reloading: bool = False) -> dict[str, Any]:
    rec = Recorder()
    tls = ssl.create_default_context()  # one for all: building one per client costs ~10 ms
    viewers = [Viewer(url, token, rec, tls, assets) for _ in range(clients)]
    before = await _backend_queries(url, token)
    stop, lags = asyncio.Event(), []
    lag_task = asyncio.create_task(_loop_lag(stop, lags))
    loop = asyncio.get_running_loop()
    server_cpu, client_cpu, machine = cpu(), time.process_time(), cpu_times()
    t0 = loop.time() + 0.2
    deadline = t0 + seconds
    if reloading:
        await asyncio.sleep(max(0.0, t0 - loop.time()))
        tasks = [asyncio.create_task(v.reload_until(deadline)) for v in viewers]
    else:
        tasks = [asyncio.create_task(v.run(t0 + ramp_s * i / clients, deadline))
                 for i, v in enumerate(viewers)]
    done, unfinished = await asyncio.wait(tasks, timeout=seconds + 0.2 + GRACE_S)
    ended = loop.time()
    for task in unfinished:
        task.cancel()
        rec.error("viewer", f"still busy {GRACE_S:g} s after the end")
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if task.exception() is not None:
            rec.error("viewer", f"crashed: {type(task.exception()).__name__}")
    server_cpu_end, client_cpu_end = cpu(), time.process_time()
    busy = conditions(machine, cpu_times())
    stop.set()
    await lag_task
    after = await _backend_queries(url, token)

    kinds = {}
    order = [k for k, _, _ in assets] + [k for k, _, _ in PANELS]
    for kind in [*order, REFRESH, STREAM_OPEN, FIRST_SNAPSHOT]:
        if rec.ns.get(kind):
            kinds[kind] = {**_dist(rec.ns[kind]), "kb_mean": rec.bytes[kind] / 1024
                           / len(rec.ns[kind])}
    panel_ns = [ns for kind, _, _ in PANELS for ns in rec.ns.get(kind, [])]
    if panel_ns:
        kinds[API] = _dist(panel_ns)
    requests = sum(len(rec.ns.get(k, [])) for k in order) + rec.events["streams opened"]
    errors = sum(rec.errors.values())
    by_question = {q: after["byQuestion"].get(q, 0) - before["byQuestion"].get(q, 0)
                   for q in after["byQuestion"]}
    queries = after["total"] - before["total"]
    panels = len(panel_ns)
    stream_minutes = clients * seconds / 60
    out = {
        "clients": clients,
        "behaviour": "reloading the page back to back" if reloading else "the page's",
        "seconds": seconds,
        "ramp_s": ramp_s,
        "drain_s": max(0.0, ended - deadline),
        "requests": requests + errors,
        "requests_ok": requests,
        "requests_per_s": (requests + errors) / seconds,
        "panel_fetches": panels,
        "panel_fetches_per_s": panels / seconds,
        "errors": errors,
        "errors_by_kind": dict(rec.errors.most_common()),
        "keepalive_races": sum(n for k, n in rec.errors.items() if "keep-alive race" in k),
        "error_samples": rec.error_samples,
        "kinds": kinds,
        "events": dict(rec.events),
        "snapshots_per_viewer_minute": rec.events["snapshots"] / stream_minutes,
        "refreshes_per_viewer_minute": rec.events["refreshes"] / stream_minutes,
        "backend_queries": queries,
        "backend_queries_per_s": queries / seconds,
        "backend_queries_per_panel_fetch": queries / panels if panels else None,
        "backend_by_question": {q: n for q, n in sorted(by_question.items()) if n},
        "server_cpu_s": (server_cpu_end - server_cpu
                         if server_cpu is not None and server_cpu_end is not None else None),
        "client_cpu_s": client_cpu_end - client_cpu,
        "machine": busy,
        "client_loop_lag_ms": {"p50": statistics.median(lags), "p99": _pct(lags, 0.99),
                               "max": max(lags)} if lags else None,
    }
    if out["server_cpu_s"] is not None and requests:
        out["server_cpu_ms_per_request"] = out["server_cpu_s"] * 1000 / requests
        # how much of the machine's busy time was this test (others may share the CPUs)
        out["machine"]["this_test_share"] = (
            (out["server_cpu_s"] + out["client_cpu_s"]) / (seconds * (os.cpu_count() or 1)))
    return out


def _dist(ns: list[int]) -> dict[str, Any]:
    ms = [x / 1e6 for x in ns]
    return {"n": len(ms), "p50_ms": statistics.median(ms), "p95_ms": _pct(ms, 0.95),
            "p99_ms": _pct(ms, 0.99), "max_ms": max(ms)}


async def _unauthenticated_status(url: str) -> int | str:
    """What the app answers without the token: 401 once it checks, 200 while it does not."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        try:
            response = await http.get(PANELS[-1][1], params=PANELS[-1][2])
        except httpx.HTTPError as error:
            return type(error).__name__
        return response.status_code


async def _drive(url: str, token: str, s: LoadSettings, clients: int, seconds: float,
                 assets: tuple[tuple[str, str, str], ...], cpu: Callable[[], float | None],
                 log: Callable[[str], None]) -> dict[str, Any]:
    without_token = await _unauthenticated_status(url)
    # one unmeasured visit: first-request costs (imports, DuckDB's first scans) stay out
    warm = Viewer(url, token, Recorder(), ssl.create_default_context(), assets)
    await warm.run(0, asyncio.get_running_loop().time() + 1.0)
    baseline_s = min(s.baseline_s, seconds)
    log(f"dashboard load: 1 viewer alone, reloading the page for {baseline_s:g} s")
    baseline = await _phase(url, token, 1, baseline_s, 0.0, assets, cpu, reloading=True)
    ramp_s = min(s.ramp_s, seconds / 4)
    log(f"dashboard load: {clients} viewers for {seconds:g} s (starts spread over {ramp_s:g} s)")
    load = await _phase(url, token, clients, seconds, ramp_s, assets, cpu)
    return {"without_token_status": without_token, "baseline": baseline, "load": load}


def part_load(quick: bool, clients: int | None = None, seconds: float | None = None,
              token: str | None = None, log: Callable[[str], None] | None = None
              ) -> dict[str, Any]:
    s = QUICK if quick else FULL
    clients = clients or s.clients
    seconds = seconds or s.seconds
    log = log or (lambda _: None)
    given = token or os.environ.get(TOKEN_SETTING, "").strip()
    token = given or secrets.token_urlsafe(32)
    assets = tuple(a for a in PAGE if a[0] != "chart.umd.js" or CHART_JS.is_file())
    with tempfile.TemporaryDirectory(prefix="im-bench-load-") as workdir:
        log(f"dashboard load: backfilling {s.hours:g} h of demo data and starting the server")
        server = _ServerProcess(s, token, workdir)
        try:
            info = server.wait_ready()
            phases = asyncio.run(_drive(info["url"], token, s, clients, seconds, assets,
                                        server.cpu_s, log))
        except BaseException:
            print(server.stderr_tail(), file=sys.stderr)
            raise
        finally:
            server.close()
    import uvicorn

    base, load = phases["baseline"], phases["load"]
    ratios = {}
    for kind, d in load["kinds"].items():
        b = base["kinds"].get(kind)
        if b:
            ratios[kind] = {"p50": d["p50_ms"] / b["p50_ms"], "p95": d["p95_ms"] / b["p95_ms"]}
    return {
        "settings": {**asdict(s), "clients": clients, "seconds": seconds},
        "server": f"uvicorn {uvicorn.__version__} in its own process on {info['url']}, "
                  "create_app(backend=CountingBackend(LocalBackend(store))), demo running live",
        "client": f"httpx {httpx.__version__} AsyncClient per viewer (2 connections: fetches, "
                  "stream), one asyncio loop in the bench process",
        "store": {"hours": s.hours, "tenants": s.tenants, "integrations": s.integrations,
                  "apptraces_rows_at_start": info["apptraces_rows"],
                  "backfill_s": info["backfill_s"]},
        "token": "given" if given else "random",
        "without_token_status": phases["without_token_status"],
        "page_assets": [kind for kind, _, _ in assets],
        "skipped_assets": [] if CHART_JS.is_file() else
        ["chart.umd.js (not built: make dashboard/vendor/chart.umd.js)"],
        "baseline": base,
        "load": load,
        "ratios": ratios,
        "backend_queries_per_s_vs_single": (
            load["backend_queries_per_s"] / base["backend_queries_per_s"]
            if base["backend_queries_per_s"] else None),
        "pass": load["errors"] == 0 and base["errors"] == 0,
    }


def _x(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.0f}x"


def print_load(r: dict[str, Any]) -> None:
    from ._report import table

    st, base, load = r["settings"], r["baseline"], r["load"]
    print(f"\nDashboard load: {load['clients']} viewers for {load['seconds']:g} s (starts "
          f"spread over {load['ramp_s']:g} s); baseline ('alone'): 1 viewer reloading the "
          f"page back to back for {base['seconds']:g} s")
    print(f"  {r['server']};\n  store {st['hours']:g} h, {st['tenants']} tenants, "
          f"{st['integrations']} integrations ({r['store']['apptraces_rows_at_start']:,} "
          f"AppTraces rows, backfilled in {r['store']['backfill_s']:.1f} s);\n  {r['client']}; "
          f"bearer token ({r['token']}) sent; without it the app answers "
          f"{r['without_token_status']}")
    for skipped in r["skipped_assets"]:
        print(f"  skipped: {skipped}")
    rows = []
    for kind, d in load["kinds"].items():
        b = base["kinds"].get(kind)
        ratio = r["ratios"].get(kind)
        rows.append([
            kind, str(d["n"]), f"{d['p50_ms']:.1f}", f"{d['p95_ms']:.1f}", f"{d['p99_ms']:.1f}",
            f"{d['max_ms']:.0f}",
            f"{b['p50_ms']:.1f} / {b['p95_ms']:.1f} (n={b['n']})" if b else "-",
            f"{_x(ratio['p50'])} / {_x(ratio['p95'])}" if ratio else "-",
        ])
    print(table(["request (ms)", "n", "p50", "p95", "p99", "max", "alone p50 / p95",
                 "load vs alone p50 / p95"], rows))
    races = load["keepalive_races"]
    print(f"  {load['requests']:,} requests, {load['requests_per_s']:.0f}/s "
          f"({load['panel_fetches_per_s']:.0f} panel fetches/s); errors {load['errors']}"
          + (f" ({races} keep-alive races: the server closed an idle connection as a request "
             "went out; resent, as a browser does)" if races else "")
          + (f": {load['errors_by_kind']}" if load["errors"] else "")
          + (f"; alone: errors {base['errors']}: {base['errors_by_kind']}"
             if base["errors"] else "")
          + f"; last refreshes drained {load['drain_s']:.1f} s after the end")
    ev = load["events"]
    print(f"  streams: {ev.get('streams opened', 0)} opened, {ev.get('snapshots', 0)} snapshots "
          f"({load['snapshots_per_viewer_minute']:.1f} per viewer-minute), "
          f"{ev.get('streams renewed (bye)', 0)} renewed; refreshes "
          f"{ev.get('refreshes', 0)} ({load['refreshes_per_viewer_minute']:.1f} per "
          f"viewer-minute, {ev.get('refreshes queued behind another', 0)} queued behind another)")
    ratio = r["backend_queries_per_s_vs_single"]
    print(f"  backend queries: {load['backend_queries']} ({load['backend_queries_per_s']:.2f}/s, "
          f"{load['backend_queries_per_panel_fetch'] or 0:.3f} per panel fetch); alone "
          f"{base['backend_queries']} ({base['backend_queries_per_s']:.2f}/s)"
          + (f" -> {ratio:.2f}x the queries/s for {load['clients']}x the viewers" if ratio
             else ""))
    cpu = load.get("server_cpu_s")
    lag = load["client_loop_lag_ms"]
    busy = load["machine"].get("cpu_busy_share")
    ours = load["machine"].get("this_test_share")
    print(f"  CPU during the load: server {cpu or 0:.1f} s"
          + (f" ({load['server_cpu_ms_per_request']:.2f} ms/request)"
             if "server_cpu_ms_per_request" in load else "")
          + f", clients {load['client_cpu_s']:.1f} s"
          + (f"; machine busy {busy:.0%}" if busy is not None else "")
          + (f", this test {ours:.0%}" if ours is not None else "")
          + (f"; client loop lag p99 {lag['p99']:.0f} ms, max {lag['max']:.0f} ms" if lag
             else ""))
    if busy is not None and ours is not None and busy - ours > 0.25:
        print("  WARNING: other processes used the CPUs during the load; latencies are high")
    print("  -> " + ("PASS: no errors" if r["pass"] else "MISS: errors (see above)"))


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1:]))
