"""`python -m bench [--quick] [--profile] [--hang] [--no-ingest] [--no-load] [--no-budget]
[--out PATH]`.

Part 1: one instrumented sync event (structured log call + counter + histogram) through a
real `Telemetry` on the production pipeline of local mode (batch log processor -> DuckDB
store, periodic metric reader -> store, JSON lines to /dev/null), against one stdlib
`logging` call with a JSON formatter to /dev/null. Also `sync_job()` against two stdlib
calls, the log call alone, and the pieces the cost is made of.

Part 2: the same event with the Azure Monitor exporters behind the batch processor and
periodic reader while their endpoint is down (a closed local port), against a healthy
in-memory exporter and against the same Azure exporters talking to a local stand-in that
accepts everything: paced (a steady event rate, exports failing in the background) and in
bursts (the queue fills); and how long `flush(timeout_millis=2000)` takes after each.

Local ingest (unless `--no-ingest`): the demo writes about a million events into a DuckDB
store; then the admin API on that store: p50/p95 of the five endpoints through uvicorn and
httpx (each request a cache miss) against a plain SQL round trip and /api/health through
the same server, 100 concurrent clients on the shared-query cache, and where the
endpoints' time goes (duckdb-kql translation vs DuckDB execution); then an admin's uncached
requests alone and beside a reader who opens 30 live streams (goal: p95 within 2x); then
the same endpoints with 30 days of history at that rate (the day copied back), the
endpoints' uncached latency on the demo's default store, and how long its 24 h backfill
takes.

Dashboard load (unless `--no-load`): 200 simulated dashboard viewers (page, assets, the six
panels, the event stream, re-fetching on each new snapshot) against the app on uvicorn in
its own process for 60 s, against one viewer alone: latency per request kind, errors,
requests per second and backend queries (`--load-clients`, `--load-seconds` shorten it).

Query budget (unless `--no-budget`): 200 viewers of 50 tenants on the app with the Log
Analytics backend, against the loopback query API holding Azure Monitor's per-identity
limits, through the real `LogsQueryClient` (`_budget.py`): the most queries sent in any 30 s
and any 429 or 503 reaching a viewer.

`--hang` adds flush() against an endpoint that accepts connections and never answers
(about 10 s); `--profile` adds cProfile breakdowns of our calls.

Prints tables, then every goal with what this run measured (`_goals.py`), and writes
bench/results/latest.json. Never fails on a missed goal.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import _pipelines as pl
from . import _scenario as sc
from ._abuse import part_abuse, print_abuse
from ._admin import (
    part_admin,
    part_default_store,
    part_history,
    print_admin,
    print_default_store,
    print_history,
)
from ._alerting import part_alerting, print_alerting
from ._budget import part_budget, print_budget
from ._goals import print_goals
from ._ingest import part_ingest, print_ingest, store_path
from ._load import part_load, print_load
from ._report import conditions, cpu_times, environment, header, table, us
from ._timing import Variant, distribution, measure, paced, ratio

GOAL = 2.0
PART1_MAX_RECORDS = 3000
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


@dataclass(frozen=True)
class Settings:
    repeats: int
    target_ms: float
    warmup_ms: float
    paced_rate_hz: float
    paced_s: float
    paced_warmup_s: float
    burst_repeats: int
    burst_target_ms: float
    burst_warmup_ms: float
    schedule_delay_ms: int
    metric_interval_ms: int
    profile_iterations: int


FULL = Settings(
    repeats=9,
    target_ms=150,
    warmup_ms=100,
    paced_rate_hz=2000,
    paced_s=1.5,
    paced_warmup_s=0.2,
    burst_repeats=3,
    burst_target_ms=300,
    burst_warmup_ms=100,
    schedule_delay_ms=50,
    metric_interval_ms=100,
    profile_iterations=5000,
)
QUICK = Settings(
    repeats=3,
    target_ms=30,
    warmup_ms=20,
    paced_rate_hz=2000,
    paced_s=0.4,
    paced_warmup_s=0.1,
    burst_repeats=2,
    burst_target_ms=100,
    burst_warmup_ms=30,
    schedule_delay_ms=50,
    metric_interval_ms=100,
    profile_iterations=1000,
)


# -- part 1 -------------------------------------------------------------------------------


def part1(s: Settings, workdir: str) -> dict[str, Any]:
    ours_sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    base_sink = open(os.devnull, "w")  # noqa: SIM115
    pipe = pl.store_pipeline(os.path.join(workdir, "bench.duckdb"), ours_sink)
    logger = sc.baseline_logger(base_sink)
    t = pipe.telemetry
    base = {"settle": base_sink.flush}

    def ours(records_per_call: int) -> dict[str, Any]:
        # Each loop stays under the processor's 4096-record batch threshold and is flushed
        # after, so `ours` is the caller's cost while the exporter only queues, and
        # `ours+export` adds the export of what was queued. A longer loop would wake the
        # export thread mid-loop in some variants and not others.
        cap = PART1_MAX_RECORDS // records_per_call if records_per_call else None
        return {"settle": pipe.flush, "reset": pipe.flush, "max_iterations": cap}

    v = {
        "ours_event": Variant("ours: log + counter + histogram", sc.ours_event(t), **ours(1)),
        "base_event": Variant("stdlib: 1 JSON log call", sc.baseline_event(logger), **base),
        "ours_sync_job": Variant("ours: sync_job()", sc.ours_sync_job(t), **ours(2)),
        "base_sync_job": Variant("stdlib: 2 JSON log calls", sc.baseline_sync_job(logger), **base),
        "ours_log": Variant("ours: log.info", sc.ours_log(t), **ours(1)),
        "ours_log_quiet": Variant(
            "ours: log.info, stdout line off", sc.ours_log(pipe.quiet), **ours(1)
        ),
        "ours_counter": Variant("ours: telemetry.metric (counter)", sc.ours_counter(t), **ours(0)),
        "ours_histogram": Variant(
            "ours: telemetry.metric (histogram)", sc.ours_histogram(t), **ours(0)
        ),
        "sdk_floor": Variant(
            "OTel SDK direct: logger.emit + counter.add + histogram.record",
            sc.sdk_floor_event(t),
            **ours(1),
        ),
        "sdk_span": Variant(
            "OTel SDK direct: the span sync_job() opens", sc.sdk_span(t), **ours(0)
        ),
    }
    try:
        measure(
            list(v.values()),
            repeats=s.repeats,
            target_ns=s.target_ms * 1e6,
            warmup_ns=s.warmup_ms * 1e6,
        )
        pipe.flush()
        health = {
            "rows_stored": pipe.rows(),
            "log_batches_failed": pipe.log_exporter.failed_batches,
            "metric_batches_failed": pipe.metric_exporter.failed_batches,
            "queue_full_dropped": pipe.telemetry.stats()["logs_dropped"]["queue_full"],
            "max_records_per_loop": PART1_MAX_RECORDS,
            "telemetry_errors": dict(t.errors),
        }
    finally:
        pipe.close()
        ours_sink.close()
        base_sink.close()

    rows = []
    for key, label, ours_key, base_key in (
        ("event", "event: log + counter + histogram vs 1 stdlib call", "ours_event", "base_event"),
        (
            "sync_job",
            "sync_job(): 2 events + 7 metrics + span vs 2 stdlib calls",
            "ours_sync_job",
            "base_sync_job",
        ),
        ("log", "log call alone vs 1 stdlib call", "ours_log", "base_event"),
    ):
        o, b = v[ours_key], v[base_key]
        r = ratio(o, b)
        rows.append(
            {
                "row": key,
                "label": label,
                "ours_ns": o.median_ns,
                "baseline_ns": b.median_ns,
                **r,
                "goal": GOAL,
                "pass": r["ratio"] <= GOAL,
                "ours_with_export_ns": o.median_settled_ns,
                "ratio_with_export": o.median_settled_ns / b.median_settled_ns,
            }
        )
    base_ns = v["base_event"].median_ns
    breakdown = [
        {
            "key": key,
            "label": v[key].name,
            "ns": v[key].median_ns,
            "x_baseline": v[key].median_ns / base_ns,
        }
        for key in (
            "base_event",
            "ours_event",
            "ours_log",
            "ours_log_quiet",
            "ours_counter",
            "ours_histogram",
            "sdk_floor",
            "sdk_span",
            "ours_sync_job",
            "base_sync_job",
        )
    ]
    parts = sum(v[k].median_ns for k in ("ours_log", "ours_counter", "ours_histogram"))
    breakdown.append(
        {
            "key": "sum_of_parts",
            "label": "(ours: log.info + counter + histogram, measured apart, summed)",
            "ns": parts,
            "x_baseline": parts / base_ns,
        }
    )
    return {
        "pipeline": {
            "logs": "LoggerProvider -> CountedBatchLogRecordProcessor(schedule 1000 ms, queue "
            "65536, batch 4096) -> StoreLogExporter -> BufferedWriter(write-through) -> "
            "TelemetryStore (temp DuckDB file)",
            "metrics": "MeterProvider -> PeriodicExportingMetricReader(10 s) -> "
            "StoreMetricExporter",
            "traces": "TracerProvider, no span processor (as local mode)",
            "stdout": "Telemetry(stream=open(os.devnull, 'w'))",
            "baseline": "logging.StreamHandler(open(os.devnull, 'w')) + JsonFormatter",
        },
        "rows": rows,
        "breakdown": breakdown,
        "health": health,
        "variants": {key: {"name": var.name, **var.summary()} for key, var in v.items()},
    }


def print_part1(result: dict[str, Any]) -> None:
    print(f"\nPart 1: one instrumented sync event vs stdlib JSON logging (goal <= {GOAL:.1f}x)")
    p = result["pipeline"]
    print(f"  ours: {p['logs']}\n        {p['metrics']}; {p['traces']}; {p['stdout']}")
    print(f"  baseline: {p['baseline']}\n")
    print(
        table(
            [
                "row",
                "ours/call",
                "baseline/call",
                "ratio",
                "per round",
                "goal",
                "ours+export",
                "ratio+export",
            ],
            [
                [
                    r["label"],
                    us(r["ours_ns"]),
                    us(r["baseline_ns"]),
                    f"{r['ratio']:.2f}x",
                    f"{r['round_min']:.2f}-{r['round_max']:.2f}x",
                    "PASS" if r["pass"] else "MISS",
                    us(r["ours_with_export_ns"]),
                    f"{r['ratio_with_export']:.2f}x",
                ]
                for r in result["rows"]
            ],
        )
    )
    print(
        f"  ours: the caller's cost while the batch processor only queues (loops of <= "
        f"{PART1_MAX_RECORDS} records,\n  under its 4096 export threshold, flushed after "
        "each loop). +export: the same loop plus flushing\n  what it queued to DuckDB, per "
        "call (the export thread's work, here on the caller's thread).\n"
    )
    print("Where the time goes (same pipeline, median per call):")
    print(
        table(
            ["", "per call", "x baseline"],
            [[b["label"], us(b["ns"]), f"{b['x_baseline']:.2f}x"] for b in result["breakdown"]],
        )
    )
    h = result["health"]
    print(
        f"  pipeline: stored {h['rows_stored']}, failed batches logs/metrics "
        f"{h['log_batches_failed']}/{h['metric_batches_failed']}, dropped as queue full "
        f"{h['queue_full_dropped']} (<= {h['max_records_per_loop']} records per loop, "
        f"queue 65536), Telemetry.errors {h['telemetry_errors']}"
    )


# -- part 2 -------------------------------------------------------------------------------


def _loops_summary(loops: list[dict[str, Any]], emitted: list[int]) -> dict[str, Any]:
    """Exports, drops and flushes over loops (`emitted[i]` log records in loop i)."""
    dropped = sum(max(0, n - loop["exported"]) for n, loop in zip(emitted, loops, strict=True))
    flush_ms = [loop["flush_ms"] for loop in loops]
    per_record = [
        loop["flush_ms"] * 1e6 / loop["backlog_at_flush"]
        for loop in loops
        if loop["backlog_at_flush"] > 0
    ]
    return {
        "log_records_emitted": sum(emitted),
        "dropped_queue_full": dropped,
        "dropped_share": dropped / sum(emitted) if sum(emitted) else 0.0,
        **{
            k.removeprefix("in_loop_"): sum(loop[k] for loop in loops)
            for k in loops[0]
            if k.startswith("in_loop_")
        },
        "flush_ms": [round(x, 2) for x in flush_ms],
        "flush_ms_median": statistics.median(flush_ms),
        "flush_ms_max": max(flush_ms),
        "flush_returned_true": all(loop["flush_returned"] for loop in loops),
        "backlog_at_flush_max": max(loop["backlog_at_flush"] for loop in loops),
        "flush_ns_per_queued_record": statistics.median(per_record) if per_record else None,
    }


def part2(s: Settings) -> dict[str, Any]:
    """Each pipeline is measured in its own phase, alone in the process.

    Interleaving would leave the other pipelines' SDK threads (batch workers, metric
    readers) competing for the GIL during every loop; instead the local pipeline is
    measured first and again last, to show any drift. In each phase: a paced run (events
    at a steady rate, the exporters working in the background during it), then bursts
    (the tight loop of part 1, which fills the queue), each followed by a timed flush.
    """
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    delays = (s.schedule_delay_ms, s.metric_interval_ms)
    down_endpoint = f"https://127.0.0.1:{pl.closed_port()}/"
    factories = {
        "local": lambda: pl.local_pipeline(sink, *delays),
        "down": lambda: pl.azure_pipeline(
            "Azure exporters, endpoint down", down_endpoint, sink, *delays
        ),
    }
    notes = []
    server = None
    try:
        server = pl.IngestionServer()
        factories["standin"] = lambda: pl.azure_pipeline(
            "Azure exporters, stand-in endpoint (200 OK)", server.endpoint, sink, *delays
        )
    except Exception as exc:  # the control row is optional
        notes.append(f"stand-in endpoint skipped: {exc}")
    phases = ["local", "down", *(["standin"] if "standin" in factories else []), "local"]
    acc: dict[str, dict[str, Any]] = {}
    try:
        for key in phases:
            pipeline = factories[key]()
            a = acc.setdefault(
                key,
                {
                    "name": pipeline.name,
                    "latencies": [],
                    "paced_loops": [],
                    "paced_emitted": [],
                    "burst_ns": [],
                    "burst_loops": [],
                    "burst_emitted": [],
                },
            )
            call = sc.ours_event(pipeline.telemetry)
            try:
                pipeline.reset()
                paced(call, s.paced_rate_hz, s.paced_warmup_s)
                pipeline.reset()
                latencies = paced(call, s.paced_rate_hz, s.paced_s)
                pipeline.drain()
                a["latencies"] += latencies
                a["paced_loops"].append(pipeline.loops[-1])
                a["paced_emitted"].append(len(latencies))
                burst = Variant(pipeline.name, call, settle=pipeline.drain, reset=pipeline.reset)
                measure(
                    [burst],
                    repeats=s.burst_repeats,
                    target_ns=s.burst_target_ms * 1e6,
                    warmup_ns=s.burst_warmup_ms * 1e6,
                )
                a["burst_ns"] += burst.caller_ns
                a["burst_loops"] += pipeline.loops[-s.burst_repeats :]
                a["burst_emitted"] += [burst.iterations] * s.burst_repeats
            finally:
                pipeline.close()
    finally:
        if server is not None:
            server.stop()
        sink.close()

    out: dict[str, Any] = {
        "settings": {
            "schedule_delay_ms": s.schedule_delay_ms,
            "metric_interval_ms": s.metric_interval_ms,
            "max_queue_size": 2048,
            "max_export_batch_size": 512,
            "paced_rate_hz": s.paced_rate_hz,
            "paced_s": s.paced_s,
            "down_endpoint": down_endpoint + " (closed port)",
            "standin_endpoint": server.endpoint if server else None,
            "azure_env": pl.AZURE_QUIET_ENV,
            "phases": phases,
        },
        "pipelines": {},
        "notes": notes,
    }
    for key, a in acc.items():
        out["pipelines"][key] = {
            "name": a["name"],
            "paced": {
                **distribution(a["latencies"]),
                **_loops_summary(a["paced_loops"], a["paced_emitted"]),
            },
            "burst": {
                "per_call_ns": statistics.median(a["burst_ns"]),
                "repeats_ns": [round(x, 1) for x in a["burst_ns"]],
                **_loops_summary(a["burst_loops"], a["burst_emitted"]),
            },
        }
    pipes = out["pipelines"]
    for entry in pipes.values():
        entry["paced"]["median_vs_local"] = (
            entry["paced"]["median_ns"] / pipes["local"]["paced"]["median_ns"]
        )
        entry["paced"]["p99_vs_local"] = (
            entry["paced"]["p99_ns"] / pipes["local"]["paced"]["p99_ns"]
        )
        entry["burst"]["vs_local"] = (
            entry["burst"]["per_call_ns"] / pipes["local"]["burst"]["per_call_ns"]
        )
    down = pipes["down"]
    out["down_vs_local"] = down["paced"]["median_vs_local"]
    out["down_vs_local_burst"] = down["burst"]["vs_local"]
    if "standin" in pipes:
        out["down_vs_standin"] = down["paced"]["median_ns"] / pipes["standin"]["paced"]["median_ns"]
        out["down_vs_standin_burst"] = (
            down["burst"]["per_call_ns"] / pipes["standin"]["burst"]["per_call_ns"]
        )
    out["flush_timeout_ms"] = 2000
    out["flush_ms_max_endpoint_down"] = max(
        down["paced"]["flush_ms_max"], down["burst"]["flush_ms_max"]
    )
    out["flush_bounded"] = out["flush_ms_max_endpoint_down"] <= 2000
    return out


def print_part2(result: dict[str, Any]) -> None:
    st = result["settings"]
    pipes = result["pipelines"].values()
    print(
        f"\nPart 2: caller cost when the exporter's endpoint is down (same event; batch "
        f"processor schedule {st['schedule_delay_ms']} ms, queue {st['max_queue_size']}, "
        f"batch {st['max_export_batch_size']}; metric reader every "
        f"{st['metric_interval_ms']} ms;\n  one pipeline at a time: {', '.join(st['phases'])})"
    )
    print(
        f"\n  paced: {st['paced_rate_hz']:g} events/s for {st['paced_s']:g} s; each call timed; "
        "exporters run during the window"
    )
    print(
        table(
            [
                "pipeline",
                "median",
                "p90",
                "p99",
                "median vs local",
                "log exports ok/failed",
                "metric ok/failed",
                "dropped",
                "flush after",
            ],
            [
                [
                    p["name"],
                    us(p["paced"]["median_ns"]),
                    us(p["paced"]["p90_ns"]),
                    us(p["paced"]["p99_ns"]),
                    f"{p['paced']['median_vs_local']:.2f}x",
                    f"{p['paced']['log_exports_ok']}/{p['paced']['log_exports_failed']}",
                    f"{p['paced']['metric_exports_ok']}/{p['paced']['metric_exports_failed']}",
                    f"{p['paced']['dropped_queue_full']} ({p['paced']['dropped_share']:.0%})",
                    f"{p['paced']['flush_ms_max']:.0f} ms",
                ]
                for p in pipes
            ],
        )
    )
    print("\n  burst: the tight loop of part 1 (the queue fills); flush right after each loop")
    print(
        table(
            [
                "pipeline",
                "per call",
                "vs local",
                "log exports ok/failed",
                "dropped",
                "flush median / max",
                "max backlog",
                "flush/record",
            ],
            [
                [
                    p["name"],
                    us(p["burst"]["per_call_ns"]),
                    f"{p['burst']['vs_local']:.2f}x",
                    f"{p['burst']['log_exports_ok']}/{p['burst']['log_exports_failed']}",
                    f"{p['burst']['dropped_queue_full']} ({p['burst']['dropped_share']:.0%})",
                    f"{p['burst']['flush_ms_median']:.0f} / {p['burst']['flush_ms_max']:.0f} ms",
                    str(p["burst"]["backlog_at_flush_max"]),
                    us(p["burst"]["flush_ns_per_queued_record"])
                    if p["burst"]["flush_ns_per_queued_record"] is not None
                    else "-",
                ]
                for p in pipes
            ],
        )
    )
    print(
        "  exports: completed during the timed calls; dropped: log records the batch processor\n"
        "  discarded because its queue was full (emitted minus exported); flush:\n"
        "  telemetry.flush(timeout_millis=2000) on the caller's thread; flush/record: flush\n"
        "  time / records queued when it started.\n"
    )
    line = f"  endpoint down vs healthy local: {result['down_vs_local']:.2f}x paced"
    line += f", {result['down_vs_local_burst']:.2f}x burst (expected ~1.0x)"
    print(line)
    if "down_vs_standin" in result:
        print(
            f"  endpoint down vs the same exporters, endpoint healthy: "
            f"{result['down_vs_standin']:.2f}x paced, {result['down_vs_standin_burst']:.2f}x burst"
        )
    print(
        f"  flush(timeout_millis=2000) with endpoint down: max "
        f"{result['flush_ms_max_endpoint_down']:.0f} ms -> "
        + ("bounded (<= 2000 ms)" if result["flush_bounded"] else "NOT bounded by 2000 ms")
    )
    for note in result["notes"]:
        print(f"  note: {note}")


# -- optional: an endpoint that hangs instead of refusing ---------------------------------

HANG_RECORDS = 512  # one export batch


def part_hang() -> dict[str, Any]:
    """flush(timeout_millis=2000) with one batch queued for an endpoint that never answers.

    A closed port fails each export at once; an endpoint that accepts the connection and
    then stays silent (a stalled proxy, a black-holed route) makes each export wait for
    the exporter's network timeout (10 s by default).
    """
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    try:
        with pl.hanging_endpoint() as endpoint:
            pipeline = pl.azure_pipeline(
                "Azure exporters, endpoint hangs", endpoint, sink, 600_000, 600_000
            )
            try:
                call = sc.ours_log(pipeline.telemetry)  # logs only: no metric export to wait on
                for _ in range(HANG_RECORDS):
                    call()
                start = time.perf_counter_ns()
                ok = pipeline.telemetry.flush(timeout_millis=2000)
                elapsed_ms = (time.perf_counter_ns() - start) / 1e6
            finally:
                pipeline.close()
    finally:
        sink.close()
    return {
        "endpoint": endpoint + " (accepts TCP, never answers)",
        "records_queued": HANG_RECORDS,
        "flush_timeout_ms": 2000,
        "flush_ms": elapsed_ms,
        "flush_returned": ok,
        "bounded": elapsed_ms <= 2000,
    }


def print_hang(result: dict[str, Any]) -> None:
    print(
        f"\nHanging endpoint ({result['endpoint']}): flush(timeout_millis=2000) with "
        f"{result['records_queued']} log records queued took {result['flush_ms']:.0f} ms and "
        f"returned {result['flush_returned']} -> "
        + ("bounded" if result["bounded"] else "NOT bounded by its timeout")
    )


# -- profile ------------------------------------------------------------------------------


def part_profile(s: Settings, workdir: str) -> dict[str, Any]:
    from ._profile import profile, render

    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    pipe = pl.store_pipeline(os.path.join(workdir, "profile.duckdb"), sink)
    out = {}
    try:
        for key, title, call in (
            ("event", "ours: log + counter + histogram", sc.ours_event(pipe.telemetry)),
            ("log", "ours: log.info", sc.ours_log(pipe.telemetry)),
            ("sync_job", "ours: sync_job()", sc.ours_sync_job(pipe.telemetry)),
        ):
            for _ in range(200):
                call()
            pipe.flush()
            out[key] = profile(call, s.profile_iterations)
            pipe.flush()
            print("\n" + render(title, out[key]))
    finally:
        pipe.close()
        sink.close()
    return out


# -- main ---------------------------------------------------------------------------------


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError("must be more than 0")
        return value

    return parse


def _progress(message: str) -> None:
    print(f"  ... {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (a few seconds)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile our calls with cProfile and show where time goes",
    )
    parser.add_argument(
        "--hang",
        action="store_true",
        help="also time flush() against an endpoint that accepts and never answers (~10 s)",
    )
    parser.add_argument("--no-ingest", action="store_true",
                        help="skip the ~1M-event local ingest (about 3 minutes) and the "
                        "admin API part that runs on its store")
    parser.add_argument("--no-load", action="store_true",
                        help="skip the dashboard load test (about 2 minutes)")
    parser.add_argument("--no-budget", action="store_true",
                        help="skip the Log Analytics query budget part (200 viewers of 50 "
                        "tenants against the loopback query API; --budget-seconds, default "
                        "300, 20 with --quick)")
    parser.add_argument("--budget-seconds", type=_positive(float), metavar="S")
    parser.add_argument("--load-clients", type=_positive(int), metavar="N",
                        help="simulated dashboard viewers (default 200, 20 with --quick)")
    parser.add_argument("--load-seconds", type=_positive(float), metavar="S",
                        help="how long they run (default 60, 10 with --quick)")
    parser.add_argument("--load-token", metavar="TOKEN",
                        help="the admin API token to serve and send (default: $ADMIN_API_TOKEN, "
                        "else a random one)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    for key, value in pl.AZURE_QUIET_ENV.items():
        os.environ.setdefault(key, value)

    started = time.perf_counter()
    cpu_before = cpu_times()
    env = environment()
    method = (
        f"part 1: median of {settings.repeats} interleaved repeats x ~{settings.target_ms:g} "
        f"ms after warm-up; part 2: {settings.paced_s:g} s paced + {settings.burst_repeats} "
        f"x ~{settings.burst_target_ms:g} ms bursts per pipeline; time.perf_counter_ns; gc off "
        "in every timed loop" + ("; QUICK run" if args.quick else "")
    )
    print(header(env, method), flush=True)

    messages = pl.MessageCounter()
    messages.install()
    results: dict[str, Any] = {
        "environment": env,
        "method": method,
        "quick": args.quick,
        "settings": asdict(settings),
        "goal": GOAL,
    }
    with tempfile.TemporaryDirectory(prefix="im-bench-") as workdir:
        results["part1"] = part1(settings, workdir)
        print_part1(results["part1"])
        sys.stdout.flush()
        results["part2"] = part2(settings)
        print_part2(results["part2"])
        if args.hang:
            results["hang"] = part_hang()
            print_hang(results["hang"])
        if args.profile:
            results["profile"] = part_profile(settings, workdir)
        if not args.no_ingest:
            results["ingest"] = part_ingest(workdir, args.quick)
            print_ingest(results["ingest"])
            sys.stdout.flush()
            size = {k: results["ingest"][k] for k in ("hours", "tenants", "integrations")}
            results["admin"] = part_admin(str(store_path(workdir)), args.quick, size)
            print_admin(results["admin"])
            sys.stdout.flush()
            results["abuse"] = part_abuse(str(store_path(workdir)), args.quick)
            print_abuse(results["abuse"])
            results["history"] = part_history(str(store_path(workdir)), workdir, args.quick,
                                              results["admin"]["latency"])
            print_history(results["history"])
            results["default_store"] = part_default_store(workdir, args.quick)
            print_default_store(results["default_store"])
            sys.stdout.flush()
    if not args.no_load:
        results["load"] = part_load(args.quick, args.load_clients, args.load_seconds,
                                    args.load_token, log=_progress)
        print_load(results["load"])
        sys.stdout.flush()
    if not args.no_budget:
        with tempfile.TemporaryDirectory(prefix="im-bench-") as workdir:
            results["budget"] = part_budget(
                workdir, args.budget_seconds or (20.0 if args.quick else 300.0),
                viewers=40 if args.quick else 200, tenants=10 if args.quick else 50)
        print_budget(results["budget"])
        sys.stdout.flush()
    results["alerting"] = part_alerting(args.quick)
    print_alerting(results["alerting"])
    print_goals(results)
    results["sdk_messages"] = dict(messages.counts)
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    results["conditions"] = cond = conditions(cpu_before, cpu_times())
    if cond:
        cpus = env["cpus_usable"] or 1
        print(
            f"\nRun conditions: CPU busy {cond.get('cpu_busy_share', 0):.0%} of {cpus} CPUs "
            "(this bench keeps about 1 busy, 2 during the dashboard load), "
            f"steal {cond.get('cpu_steal_share', 0):.1%}, "
            f"load {env['load_1min'] or 0:.2f} at start, {cond.get('load_1min_end', 0):.2f} at end"
        )
        if cond.get("cpu_busy_share", 0) > 0.75 or cond.get("cpu_steal_share", 0) > 0.05:
            print("  WARNING: the machine was busy or its CPU stolen; numbers are noisy")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\n{results['elapsed_s']} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
