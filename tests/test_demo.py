"""The demo workload: every seed metric, all three levels, deterministic, resumable."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import time
from collections import Counter

import jsonschema
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

from integration_monitoring import METRICS, demo
from integration_monitoring.demo import build_world, run_demo
from integration_monitoring.store import (
    TABLES,
    BufferedWriter,
    StoreLogExporter,
    StoreMetricExporter,
    TelemetryStore,
)

from .helpers import ROOT, project_env

NOW = 1_790_000_000 * 10**9  # a fixed "now" so runs can be compared


def test_one_hour_demo_fills_every_seed_metric_and_all_levels(tmp_path, log_schema):
    """`demo --hours 1 --seed 7` stores all 15 seed metrics and prints valid lines of 3 levels."""
    # when the demo runs as a newcomer would run it
    done = subprocess.run(
        [sys.executable, "-m", "integration_monitoring", "demo", "--hours", "1", "--seed", "7"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=project_env(tmp_path))
    assert done.returncode == 0, done.stderr
    # then stdout is seed-format lines of every level
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    for line in lines[:: max(1, len(lines) // 200)]:
        jsonschema.validate(line, log_schema)
    assert {line["level"] for line in lines} == {"info", "warn", "error"}
    # and AppMetrics holds every seed metric name
    store = TelemetryStore(tmp_path / "telemetry.duckdb")
    names = {row[0] for row in store.kql("AppMetrics | distinct Name").rows}
    traces = store.kql("AppTraces | count").rows[0][0]
    store.close()
    assert {spec.name for spec in METRICS if spec.seed} <= names
    assert traces == len(lines)


def test_same_seed_same_story(tmp_path):
    """Two runs with one seed and one clock write the same events."""
    def run(name: str) -> list[tuple]:
        out = io.StringIO()
        store = TelemetryStore(tmp_path / f"{name}.duckdb")
        run_demo(hours=2, seed=11, store=store, stdout=out, progress=False, now_ns=NOW)
        store.close()
        return [(e["timestamp"], e["operation"], e["integrationId"], e["level"])
                for e in map(json.loads, out.getvalue().splitlines())]

    first, second = run("a"), run("b")
    assert first == second and len(first) > 500


def test_world_has_the_stories_the_panels_need():
    """Paused, stale, expiring, slow and rate-limited integrations exist, over several adapters."""
    world = build_world(7, tenants=8, integrations=24)
    assert len(world.tenants) == 8 and len(world.integrations) == 24
    assert {i.adapter_type for i in world.integrations} >= {"salesforce", "hubspot", "pipedrive"}
    assert any(i.paused for i in world.integrations)
    for quirk in ("stale", "expiring", "slow", "rate_limited", "paused_later"):
        assert world.with_quirk(quirk), quirk
    assert world.with_quirk("rate_limited")[0].adapter_type == "hubspot"


def test_demo_story_lands_in_the_store(tmp_path):
    """Expired credentials, dead letters, a backlog and sync types all show in the data."""
    store = TelemetryStore(tmp_path / "t.duckdb")
    result = run_demo(hours=3, seed=7, store=store, stdout=None, progress=False, now_ns=NOW)
    events = store.kql("""
        AppTraces
        | summarize n = count() by Message, status = tostring(Properties.status)
    """).dicts()
    depth = store.kql("""
        AppMetrics | where Name == "service_bus_queue_depth" | summarize peak = max(Max)
    """).rows[0][0]
    sync_types = {r[0] for r in store.kql(
        'AppTraces | where Message == "sync.started" | distinct tostring(Properties.syncType)'
    ).rows}
    store.close()
    seen = {(e["Message"], e["status"]) for e in events}
    assert ("connection.status_changed", "expired") in seen
    assert ("integration.status_changed", "error") in seen
    assert ("integration.status_changed", "paused") in seen
    assert ("message.dead_lettered", "") in seen
    assert depth > 100, "the webhook storm backs the queue up"
    assert sync_types == {"scheduled", "manual", "webhook"}
    assert result.counts.dead_lettered > 0 and result.counts.jobs_done > 100


def test_restart_continues_instead_of_backfilling_again(tmp_path):
    """A second run over the same store resumes from the last event: no second history."""
    store = TelemetryStore(tmp_path / "t.duckdb")
    first = run_demo(hours=2, seed=7, store=store, stdout=None, progress=False, now_ns=NOW)
    second = run_demo(hours=2, seed=7, store=store, stdout=None, progress=False,
                      now_ns=NOW + 5 * 60 * 10**9)
    created = store.kql(
        'AppTraces | where Message == "integration.status_changed" and '
        'tostring(Properties.reason) == "created" | count').rows[0][0]
    store.close()
    assert not first.resumed and second.resumed
    assert created == 24
    assert second.events < first.events / 5


@pytest.mark.parametrize("args", [["--hours", "0"], ["--hours", "lots"],
                                  ["--tenants", "0"], ["--integrations", "-3"],
                                  ["--tenants", "9", "--integrations", "3"]])
def test_demo_options_out_of_range_are_usage_errors(tmp_path, args):
    """Nonsense options stop with a usage error before anything runs."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "integration_monitoring", "demo", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=project_env(tmp_path))
    assert done.returncode == 2
    assert "usage:" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 30


def _sdk_providers(writer, resource, clock):
    """The OpenTelemetry SDK's pipeline into the store's exporters, metrics stamped by the
    simulated clock: what the demo's own providers must write, row for row."""
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(SimpleLogRecordProcessor(StoreLogExporter(writer)))
    reader = PeriodicExportingMetricReader(StoreMetricExporter(writer, clock=clock),
                                           export_interval_millis=math.inf)
    metrics = MeterProvider(metric_readers=[reader], resource=resource,
                            exemplar_filter=AlwaysOffExemplarFilter())
    return logs, metrics


def _all_rows(store: TelemetryStore) -> dict[str, Counter]:
    out = {}
    for table in TABLES:
        cursor = store.cursor()
        out[table] = Counter(cursor.execute(f'SELECT * FROM "{table}"').fetchall())
        cursor.close()
    return out


def test_the_demo_writes_what_the_sdk_pipeline_writes(tmp_path, monkeypatch):
    """The demo's providers build rows without the SDK's objects: every row of both tables,
    every column, equals what the SDK's pipeline and the store's exporters write."""
    def run(name: str) -> dict[str, Counter]:
        store = TelemetryStore(tmp_path / f"{name}.duckdb")
        run_demo(hours=3, seed=5, store=store, stdout=None, progress=False, now_ns=NOW)
        rows = _all_rows(store)
        store.close()
        return rows

    ours = run("ours")
    monkeypatch.setattr(demo, "_providers", _sdk_providers)
    sdk = run("sdk")
    for table in TABLES:
        assert sum(ours[table].values()) > 2000, table
        assert ours[table] == sdk[table], (table, list((ours[table] - sdk[table]).items())[:3],
                                           list((sdk[table] - ours[table]).items())[:3])


def test_metric_series_as_the_sdk_keeps_them(tmp_path, monkeypatch):
    """Labels in another order are the same series; non-finite values, and negative ones
    outside a gauge, are ignored; a gauge is written at every export, a counter only after
    it was added to, a histogram with its count, min and max."""
    from opentelemetry.sdk.resources import Resource

    def rows(providers) -> Counter:
        store = TelemetryStore(tmp_path / f"{providers.__name__}.duckdb")
        writer = BufferedWriter(store, max_rows=1_000_000)
        clock = iter(range(NOW, NOW + 10 * 60 * 10**9, 60 * 10**9))
        now = [next(clock)]
        _, meters = providers(writer, Resource.create({"service.name": "s"}), lambda: now[0])
        meter = meters.get_meter("m")
        counter, histogram = meter.create_counter("c"), meter.create_histogram("h")
        gauge = meter.create_gauge("g")
        counter.add(2, {"a": "1", "b": "2"})
        counter.add(3, {"b": "2", "a": "1"})
        counter.add(0, {"a": "x"})
        counter.add(-1, {"a": "neg"})
        counter.add(math.inf, {"a": "inf"})
        for value in (5, 0.5, 7, -3, math.nan):
            histogram.record(value, {"k": "v"})
        gauge.set(-4, {"q": "depth"})
        meters.force_flush()
        now[0] = next(clock)
        counter.add(1, {"a": "x"})
        meters.force_flush()
        writer.flush()
        cursor = store.cursor()
        found = Counter(cursor.execute(
            'SELECT TimeGenerated, Name, Sum, Min, Max, ItemCount, CAST(Properties AS VARCHAR) '
            'FROM "AppMetrics"').fetchall())
        cursor.close()
        store.close()
        return found

    ours = rows(demo._providers)
    assert ours == rows(_sdk_providers)
    assert sum(ours.values()) == 6  # c twice and h once, g twice, then c again


def test_log_rows_as_the_sdk_writes_them(tmp_path, monkeypatch):
    """Events with more attributes than the SDK keeps, reserved keys, odd values, inside a
    span and outside one: the same AppTraces rows either way."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from integration_monitoring import Telemetry, bind

    def rows(providers) -> Counter:
        store = TelemetryStore(tmp_path / f"{providers.__name__}.duckdb")
        writer = BufferedWriter(store, max_rows=1_000_000)
        resource = Resource.create({"service.name": "svc", "service.namespace": "ns"})
        logs, meters = providers(writer, resource, lambda: NOW)
        tracer = TracerProvider(resource=resource, id_generator=demo._SeededIds(1))
        t = Telemetry(logger_provider=logs, meter_provider=meters, tracer_provider=tracer,
                      stdout=False, clock=iter(range(NOW, NOW + 10**12, 10**6)).__next__)
        t.emit("info", "svc", "many", "t1", "i1", {f"k{i:03d}": i for i in range(140)})
        t.emit("warn", "other", "odd", metadata={"exception.type": "X", "": "empty",
                                                 "nested": {"a": [1, 2.5, None]},
                                                 "long": "x" * 10_000, "flag": True})
        with tracer.get_tracer("x").start_as_current_span("job"), bind(tenant_id="t2"):
            t.emit("error", "svc", "inside", metadata={"error": "boom"})
        logs.force_flush()
        writer.flush()
        cursor = store.cursor()
        found = Counter(cursor.execute('SELECT * FROM "AppTraces"').fetchall())
        cursor.close()
        store.close()
        return found

    ours = rows(demo._providers)
    assert ours == rows(_sdk_providers)
    assert sum(ours.values()) == 3
