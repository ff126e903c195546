"""Local ingest: the demo workload writing about a million events into the DuckDB store.

Baseline, measured in the same run: appending the very same AppTraces rows to a fresh
store in 8192-row batches, i.e. what the store alone can absorb. The ratio says how much
of the demo's time is spent producing telemetry rather than storing it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from integration_monitoring.demo import run_demo
from integration_monitoring.store import TABLES, TelemetryStore

FULL = {"hours": 24.0, "tenants": 50, "integrations": 500}
QUICK = {"hours": 2.0, "tenants": 10, "integrations": 100}


def store_path(workdir: str) -> Path:
    """Where part_ingest leaves its store (closed) for the parts after it."""
    return Path(workdir) / "ingest.duckdb"


def part_ingest(workdir: str, quick: bool) -> dict[str, Any]:
    size = QUICK if quick else FULL
    path = store_path(workdir)
    store = TelemetryStore(path)
    result = run_demo(**size, seed=7, store=store, stdout=None, progress=sys.stderr.isatty())
    traces = store.kql("AppTraces | count").rows[0][0]
    metrics = store.kql("AppMetrics | count").rows[0][0]
    size_mb = path.stat().st_size / 1e6

    columns = [name for name, _ in TABLES["AppTraces"]]
    cursor = store.cursor()
    rows = [dict(zip(columns, row, strict=True))
            for row in cursor.execute('SELECT * FROM "AppTraces"').fetchall()]
    cursor.close()
    store.close()
    fresh = TelemetryStore(Path(workdir) / "baseline.duckdb")
    started = time.perf_counter()
    for offset in range(0, len(rows), 8192):
        fresh.append("AppTraces", rows[offset:offset + 8192])
    baseline_s = time.perf_counter() - started
    fresh.close()
    demo_rate = result.events / result.seconds
    store_rate = len(rows) / baseline_s if baseline_s else float("inf")
    return {
        **size, "events": result.events, "apptraces_rows": traces, "appmetrics_rows": metrics,
        "jobs": result.counts.jobs_done + result.counts.jobs_failed, "seconds": result.seconds,
        "events_per_s": demo_rate, "store_only_rows_per_s": store_rate,
        "ratio_store_to_demo": store_rate / demo_rate, "file_mb": size_mb,
    }


def print_ingest(r: dict[str, Any]) -> None:
    print(f"\nLocal ingest: demo --hours {r['hours']:g} --tenants {r['tenants']} "
          f"--integrations {r['integrations']}")
    print(f"  {r['events']:,} events ({r['apptraces_rows']:,} AppTraces rows, "
          f"{r['appmetrics_rows']:,} AppMetrics rows, {r['jobs']:,} jobs) in "
          f"{r['seconds']:.1f} s -> {r['events_per_s']:,.0f} events/s end to end; "
          f"file {r['file_mb']:.0f} MB")
    print(f"  baseline, the store alone appending the same rows: "
          f"{r['store_only_rows_per_s']:,.0f} rows/s "
          f"({r['ratio_store_to_demo']:.1f}x the demo's rate: the rest is simulation + "
          "telemetry)")
