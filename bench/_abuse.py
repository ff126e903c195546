"""One caller against the others: an admin's uncached requests while a signed-in reader holds
live streams open, each with its own `since`.

The app runs with Entra ID roles (`Access("entra")`, the principal in X-MS-CLIENT-PRINCIPAL
as App Service authentication sends it) on the ingest part's store, served by uvicorn in a
thread. First the admin's GET /health, each with its own `until=` (a cache miss), alone;
then the same while the reader tries to open 30 streams (the app keeps four open and
refuses the rest with 429) that poll every second. Goal: the admin's p95 with the streams
open within 2x its p95 alone.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from typing import Any

from ._admin import PREFIX, Server, _dist_ms, _until, store_end

GOAL_RATIO = 2.0
STREAMS = 30
#: `until` offsets (ms after the store's end) of this part's requests: no other part's keys.
OFFSET_MS = 1500


def _principal(name: str, role: str, tenants: str | None = None) -> dict[str, str]:
    claims = [{"typ": "name", "val": name}, {"typ": "roles", "val": role}]
    if tenants is not None:
        claims.append({"typ": "tenants", "val": tenants})
    body = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return {"x-ms-client-principal": base64.b64encode(json.dumps(body).encode()).decode()}


ADMIN = _principal("admin@example.com", "Monitoring.Admin")


def _admin_requests(client: Any, end: dt.datetime, first: int, count: int) -> list[int]:
    samples = []
    for i in range(count):
        started = time.perf_counter_ns()
        response = client.get(f"{PREFIX}/health", headers=ADMIN,
                              params={"until": _until(end, OFFSET_MS + first + i)})
        samples.append(time.perf_counter_ns() - started)
        if response.status_code != 200:
            raise RuntimeError(f"admin /health: {response.status_code} {response.text[:200]}")
    return samples


def part_abuse(store_path: str, quick: bool) -> dict[str, Any]:
    from integration_monitoring.store import TelemetryStore

    store = TelemetryStore(store_path)
    try:
        return _measure(store, quick)
    finally:
        store.close()


def _measure(store: Any, quick: bool) -> dict[str, Any]:
    import httpx

    from integration_monitoring.admin import Access, LocalBackend
    from integration_monitoring.app import create_app

    rounds = 5 if quick else 15
    end = store_end(store)
    tenant = store.sql("SELECT json_extract_string(\"Properties\", '$.tenantId') FROM "
                       "\"AppTraces\" WHERE \"Message\" = 'sync.completed' LIMIT 1")[0][0]
    reader = _principal("mallory@example.com", "Monitoring.Reader", tenant)
    app = create_app(backend=LocalBackend(store), access=Access("entra"),
                     stream_options={"poll_s": 1.0, "stream_s": 600.0, "retry_ms": 1000})
    stop = threading.Event()
    statuses: list[int] = []
    with Server(app) as server, httpx.Client(base_url=server.url, timeout=300) as client:
        _admin_requests(client, end, 0, 1)  # warm-up
        idle = _admin_requests(client, end, 1, rounds)

        def hold(k: int) -> None:
            since = end - dt.timedelta(hours=24, seconds=37 * k)
            with httpx.Client(base_url=server.url, timeout=None) as own, own.stream(
                    "GET", f"{PREFIX}/stream", headers=reader,
                    params={"since": since.strftime("%Y-%m-%dT%H:%M:%SZ")}) as response:
                statuses.append(response.status_code)
                for _ in response.iter_lines():
                    if stop.is_set():
                        return

        threads = [threading.Thread(target=hold, args=(k,), daemon=True)
                   for k in range(STREAMS)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(statuses) < STREAMS and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.0)  # the open streams' first snapshots
        busy = _admin_requests(client, end, 1 + rounds, rounds)
        stop.set()
        server.server.should_exit = True
    alone, beside = _dist_ms(idle), _dist_ms(busy)
    ratio = beside["p95_ms"] / alone["p95_ms"]
    return {"streams_tried": STREAMS, "streams_open": statuses.count(200),
            "streams_refused_429": statuses.count(429), "alone": alone, "beside": beside,
            "p95_ratio": ratio, "goal_ratio": GOAL_RATIO, "pass": ratio <= GOAL_RATIO}


def print_abuse(r: dict[str, Any]) -> None:
    from ._report import table

    print(f"\nAn admin beside a reader who opens {r['streams_tried']} live streams, each "
          f"with its own since (goal: p95 within {r['goal_ratio']:g}x of alone)")
    print(f"  streams open {r['streams_open']}, refused with 429 {r['streams_refused_429']}")
    print(table(["admin GET /health (uncached)", "p50", "p95", "max"], [
        [label, f"{d['p50_ms']:.0f} ms", f"{d['p95_ms']:.0f} ms", f"{d['max_ms']:.0f} ms"]
        for label, d in (("alone", r["alone"]), ("beside the streams", r["beside"]))]))
    print(f"  p95 ratio {r['p95_ratio']:.2f}x: {'PASS' if r['pass'] else 'MISS'}")
