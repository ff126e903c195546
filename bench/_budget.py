"""Log Analytics' query budget under 200 viewers of 50 tenants, through the real SDK.

The app runs on uvicorn with `LogAnalyticsBackend` (the real `LogsQueryClient`) against the
loopback query API of `tests/loopback`, which holds Azure Monitor's per-identity limits
(5 queries at once, a queue, 200 queries per 30 s) for the app's one identity. Its store
holds the demo's telemetry for 50 tenants. Viewers sign in as Entra principals: a quarter
are admins, the rest readers of one tenant each, spread over the 50; each keeps one window
(1 h, 6 h or 24 h) and some filter by adapter or status; every viewer loads the six panels
at once, then again every 20-40 s, and a third of them also hold the live event stream and
load the panels again on each snapshot it sends.

Reported: the most queries the app sent in any 30 s (goal: under 150; the service's limit
is 200), the 429s the service answered, and what viewers got: any 429 or 503 is a miss.
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import random
import sys
import time
from pathlib import Path
from typing import Any

GOAL_PER_30S = 150
PANELS = ["integrations/stats", "integrations/health", "integrations/sync-activity",
          "integrations/errors", "integrations/performance", "alerts"]


def _principal(name: str, tenants: str | None) -> str:
    roles = ["Monitoring.Reader"] if tenants else ["Monitoring.Admin"]
    claims = [{"typ": "name", "val": name}, *({"typ": "roles", "val": r} for r in roles)]
    if tenants:
        claims.append({"typ": "tenants", "val": tenants})
    body = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return base64.b64encode(json.dumps(body).encode()).decode()


def _most_in_window(times: list[float], window_s: float = 30.0) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


def part_budget(workdir: str, seconds: float, viewers: int = 200, tenants: int = 50) -> dict:
    root = Path(__file__).resolve().parent.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from integration_monitoring.admin import Access, LogAnalyticsBackend, QueryBudget
    from integration_monitoring.app import create_app
    from integration_monitoring.demo import run_demo
    from integration_monitoring.store import TelemetryStore
    from tests.loopback.servicebus import StaticTokenCredential

    from ._admin import Server, _question

    path = Path(workdir) / "budget.duckdb"
    store = TelemetryStore(path)
    run_demo(hours=2, tenants=tenants, integrations=3 * tenants, seed=3, store=store,
             stdout=None, progress=False)
    names = sorted(r[0] for r in store.sql(
        """SELECT DISTINCT "_kept_tenantId" ->> '$' FROM "_AppTraces"
           WHERE "_kept_tenantId" IS NOT NULL"""))
    store.close()
    # The workspace runs in a process of its own, as the service is not in the app's: its
    # queries (Kusto.Language's analysis, then DuckDB) do not share the app's interpreter.
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    workspace = context.Process(target=_workspace, args=(str(path), theirs), daemon=True)
    workspace.start()
    try:
        where = _receive(ours, "start")
        budget = QueryBudget()
        backend = LogAnalyticsBackend("ws-bench", StaticTokenCredential(where["token"]),
                                      endpoint=where["endpoint"],
                                      connection_verify=where["ca_path"], budget=budget)
        app = create_app(backend=backend, access=Access("entra"))
        with Server(app) as server:
            outcome = asyncio.run(_viewers(server.url, names, viewers, seconds))
        ours.send("stop")
        seen = _receive(ours, "report")
    finally:
        workspace.join(timeout=60)
        if workspace.is_alive():
            workspace.kill()
    asked: dict[str, int] = {}
    for text in seen["queries"]:
        name = _question(text)
        asked[name] = asked.get(name, 0) + 1
    return {"viewers": viewers, "tenants": len(names), "seconds": seconds,
            "queries": len(seen["admitted"]), "most_per_30s": _most_in_window(seen["admitted"]),
            "service_429s": seen["throttled"], "by_question": dict(sorted(asked.items())),
            **outcome}


def _receive(pipe: Any, what: str) -> Any:
    if not pipe.poll(120):
        raise RuntimeError(f"the loopback workspace did not {what} within 2 minutes")
    return pipe.recv()


def _workspace(path: str, pipe: Any) -> None:
    """The loopback query API over the store at `path`, until told to stop; then what it
    admitted (monotonic times, comparable across processes), throttled and was asked."""
    from integration_monitoring.store import TelemetryStore
    from tests.loopback.loganalytics import LogAnalyticsLoopback

    store = TelemetryStore(path)
    try:
        with LogAnalyticsLoopback(store, workspaces=("ws-bench",)) as workspace:
            pipe.send({"endpoint": workspace.endpoint, "ca_path": workspace.ca_path,
                       "token": workspace.credential.token})
            pipe.recv()
            pipe.send({"admitted": [t for times in workspace.admitted.values() for t in times],
                       "throttled": workspace.throttled, "queries": workspace.queries})
    finally:
        store.close()


async def _viewers(url: str, tenants: list[str], count: int, seconds: float) -> dict:
    import httpx

    statuses: dict[int, int] = {}
    reasons: dict[str, int] = {}  # what the misses said
    latencies: list[float] = []
    end = time.monotonic() + seconds
    rng = random.Random(7)
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def panels(headers: dict[str, str], params: dict[str, str]) -> None:
            async def one(path: str) -> None:
                started = time.monotonic()
                try:
                    response = await client.get(f"/api/admin/{path}", params=params,
                                                headers=headers)
                    status = response.status_code
                    if status >= 429:
                        why = f"{status} {response.json()['error']['message']}"
                        reasons[why] = reasons.get(why, 0) + 1
                except httpx.HTTPError:
                    status = 0
                latencies.append(time.monotonic() - started)
                statuses[status] = statuses.get(status, 0) + 1
            await asyncio.gather(*(one(p) for p in PANELS))

        async def viewer(n: int) -> None:
            tenant = None if n % 4 == 0 else tenants[n % len(tenants)]
            headers = {"x-ms-client-principal": _principal(f"viewer-{n}@example.com", tenant)}
            params = {"window": ("1h", "6h", "24h")[n % 3]}
            if n % 5 == 1:
                params["adapterType"] = "salesforce"
            await asyncio.sleep(rng.uniform(0, 10))  # viewers arrive over ten seconds
            live = asyncio.create_task(stream(headers, params)) if n % 3 == 0 else None
            while time.monotonic() < end:
                await panels(headers, params)
                await asyncio.sleep(rng.uniform(20, 40))
            if live is not None:
                live.cancel()

        async def stream(headers: dict[str, str], params: dict[str, str]) -> None:
            while time.monotonic() < end:
                try:
                    async with client.stream("GET", "/api/admin/integrations/stream", params=params,
                                             headers=headers) as response:
                        statuses[response.status_code] = statuses.get(
                            response.status_code, 0) + 1
                        async for line in response.aiter_lines():
                            if line.startswith("event: snapshot"):
                                await panels(headers, params)
                            if time.monotonic() >= end:
                                return
                except (httpx.HTTPError, asyncio.CancelledError):
                    return

        await asyncio.gather(*(viewer(n) for n in range(count)))
    latencies.sort()
    return {"statuses": {str(k): v for k, v in sorted(statuses.items())}, "reasons": reasons,
            "misses": sum(v for k, v in statuses.items() if k in (0, 429, 503) or k >= 500),
            "panel_p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
            "panel_p95_ms": 1000 * latencies[int(len(latencies) * 0.95)] if latencies else None}


def print_budget(r: dict[str, Any]) -> None:
    print(f"\nLog Analytics query budget: {r['viewers']} viewers over {r['tenants']} tenants "
          f"for {r['seconds']:g} s through LogsQueryClient (limits on at the loopback)")
    verdict = "met" if r["most_per_30s"] < GOAL_PER_30S and not r["misses"] else "MISSED"
    print(f"  queries sent: {r['queries']}; most in any 30 s: {r['most_per_30s']} "
          f"(goal < {GOAL_PER_30S}; the service allows 200) -> {verdict}")
    print(f"  service 429s: {r['service_429s']}; viewers' answers by status: {r['statuses']}"
          f"; 429/503/errors reaching viewers: {r['misses']}")
    for why, count in sorted(r.get("reasons", {}).items()):
        print(f"    {count} x {why}")
    print("  queries by question: " + ", ".join(f"{k} {v}" for k, v in r["by_question"].items()))
    if r["panel_p50_ms"] is not None:
        print(f"  panel fetch p50 {r['panel_p50_ms']:.0f} ms, p95 {r['panel_p95_ms']:.0f} ms")
