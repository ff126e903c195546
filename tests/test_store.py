"""The local store: Log Analytics table shapes in a real DuckDB file, KQL on top, retention."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from integration_monitoring import Telemetry, adapter_request, get_logger, sync_job
from integration_monitoring.store import (
    TABLES,
    BufferedWriter,
    RetentionJob,
    StoreLogExporter,
    StoreMetricExporter,
    TelemetryStore,
    retention_days,
)
from integration_monitoring.telemetry._core import Losses


@pytest.fixture
def store(tmp_path):
    store = TelemetryStore(tmp_path / "telemetry.duckdb")
    yield store
    store.close()


@pytest.fixture
def pipeline(store):
    """A Telemetry whose logs and metrics are exported to the store, as locally configured."""
    resource = Resource.create({"service.name": "sync-worker"})
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(StoreLogExporter(store)))
    reader = PeriodicExportingMetricReader(StoreMetricExporter(store),
                                           export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    telemetry = Telemetry(logger_provider=logger_provider, meter_provider=meter_provider,
                          tracer_provider=TracerProvider(resource=resource), stdout=False)
    yield telemetry
    meter_provider.shutdown()
    logger_provider.shutdown()


def test_tables_have_the_workspace_columns_and_types(store):
    """AppTraces and AppMetrics have the workspace's columns, in order, with matching types."""
    for table, columns in TABLES.items():
        result = store.kql(f"{table} | getschema | project ColumnName, ColumnType")
        assert [(r[0], r[1]) for r in result.rows] == columns
    names = {name for name, _ in TABLES["AppTraces"]}
    assert {"TimeGenerated", "Message", "SeverityLevel", "Properties", "AppRoleName",
            "OperationId", "ParentId", "ItemCount", "Measurements"} <= names
    names = {name for name, _ in TABLES["AppMetrics"]}
    assert {"TimeGenerated", "Name", "Sum", "Min", "Max", "ItemCount", "Properties"} <= names


def test_events_land_as_apptraces_rows_with_string_properties(store, pipeline):
    """A logged event becomes one AppTraces row; its property values are strings, as in Azure."""
    get_logger("salesforce-adapter", pipeline).warn(
        "fetch.retry", tenant_id="tenant-123", integration_id="sf-1", entity="contact",
        recordCount=5, retryable=True, page={"cursor": "abc"})
    row = store.kql(
        "AppTraces | project Message, SeverityLevel, Properties, AppRoleName, ItemCount, Type"
    ).dicts()[0]
    assert row["Message"] == "fetch.retry"
    assert row["SeverityLevel"] == 2
    assert row["AppRoleName"] == "sync-worker"
    assert (row["ItemCount"], row["Type"]) == (1, "AppTraces")
    assert json.loads(row["Properties"]) == {
        "service": "salesforce-adapter", "operation": "fetch.retry", "tenantId": "tenant-123",
        "integrationId": "sf-1", "entity": "contact", "recordCount": "5", "retryable": "true",
        "page": '{"cursor":"abc"}', "logger_name": "salesforce-adapter"}


def test_queries_convert_property_strings_as_they_would_in_azure(store, pipeline):
    """KQL reads typed values back with toint/tobool/todouble/parse_json, as on Log Analytics."""
    log = get_logger("hubspot-adapter", pipeline)
    for count in (3, 4, 5):
        log.info("sync.completed", tenant_id="t1", integration_id="hs-1", recordCount=count,
                 duration=count * 100.0, ok=True, page={"n": count})
    result = store.kql("""
        AppTraces
        | where TimeGenerated > ago(1h) and Message == "sync.completed"
        | extend records = toint(Properties.recordCount), ms = todouble(Properties.duration),
                 ok = tobool(Properties.ok), page = toint(parse_json(tostring(Properties.page)).n)
        | summarize total = sum(records), avg_ms = avg(ms), oks = countif(ok), pages = sum(page)
            by tenant = tostring(Properties.tenantId)
    """).dicts()
    assert result == [{"tenant": "t1", "total": 12, "avg_ms": 400.0, "oks": 3, "pages": 12}]


def test_metrics_land_as_appmetrics_rows_per_series_and_interval(store, pipeline):
    """Counters and histograms export deltas: Sum/ItemCount/Min/Max per series per interval."""
    labels = {"tenant_id": "t1", "integration_id": "sf-1", "adapter_type": "salesforce",
              "entity": "contact"}
    with sync_job(**labels, telemetry=pipeline) as job:
        job.records(created=7)
    for seconds in (0.1, 0.3):
        with adapter_request(**labels, telemetry=pipeline) as call:
            call.status_code = 200
        pipeline.metric("adapter_request_duration_seconds", seconds,
                        {**labels, "status": "success"})
    pipeline.meter_provider.force_flush()
    pipeline.metric("sync_records_created_total", 2, labels)
    pipeline.meter_provider.force_flush()
    created = store.kql("""
        AppMetrics | where Name == "sync_records_created_total"
        | project Sum, Min, Max, ItemCount, tenant = tostring(Properties.tenant_id)
        | order by Sum desc
    """).rows
    assert created == [(7.0, 7.0, 7.0, 1, "t1"), (2.0, 2.0, 2.0, 1, "t1")]
    (histogram,) = store.kql("""
        AppMetrics | where Name == "adapter_request_duration_seconds"
        | project ItemCount, Min, Max, Sum
    """).rows
    assert histogram[0] == 4
    assert histogram[2] == pytest.approx(0.3)


def test_retention_deletes_only_old_rows(store):
    """Rows older than the retention window go; newer ones stay."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    store.append("AppTraces", [
        {"TimeGenerated": now - dt.timedelta(days=45), "Message": "old"},
        {"TimeGenerated": now - dt.timedelta(days=29), "Message": "recent"},
    ])
    store.append("AppMetrics", [{"TimeGenerated": now - dt.timedelta(days=31), "Name": "m"}])
    job = RetentionJob(store, days=30)
    assert job.run_once() == {"AppTraces": 1, "AppMetrics": 1}
    assert [r[0] for r in store.kql("AppTraces | project Message").rows] == ["recent"]


def test_retention_days_come_from_the_environment(monkeypatch):
    """TELEMETRY_RETENTION_DAYS sets the window; nonsense falls back to 30."""
    monkeypatch.setenv("TELEMETRY_RETENTION_DAYS", "90")
    assert retention_days() == 90
    monkeypatch.setenv("TELEMETRY_RETENTION_DAYS", "soon")
    assert retention_days() == 30
    monkeypatch.delenv("TELEMETRY_RETENTION_DAYS")
    assert retention_days() == 30


def test_a_failing_store_fails_the_export_not_the_caller(tmp_path):
    """With the store closed under it, the exporter reports failure and the caller goes on."""
    # given a pipeline whose store has gone away
    broken = TelemetryStore(tmp_path / "gone.duckdb")
    exporter = StoreLogExporter(broken)
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    telemetry = Telemetry(logger_provider=provider, meter_provider=MeterProvider(),
                          tracer_provider=TracerProvider(), stdout=False)
    broken.close()
    # when an event is logged
    event = get_logger("x", telemetry).info("after.close")
    # then the caller got its event back and the failed export was counted
    assert event is not None and event["operation"] == "after.close"
    assert exporter.failed_batches == 1
    provider.shutdown()


def test_a_buffered_writer_keeps_rows_a_failed_write_refused_and_writes_them_once(store):
    """While the table cannot be written the rows stay, in order; the next flush stores each
    of them exactly once, and the failure and the recovery are reported."""
    # given a write-through writer whose table is gone for now
    notes = io.StringIO()
    losses = Losses(stream=notes)
    writer = BufferedWriter(store, max_rows=1, losses=losses)
    # (the rows live in the table behind the AppTraces view)
    store.sql('ALTER TABLE "_AppTraces" RENAME TO "_AppTracesAway"')
    now = dt.datetime(2025, 1, 1)
    # when rows are appended, one at a time
    for n in range(3):
        assert writer.append("AppTraces", [{"TimeGenerated": now, "Message": f"m{n}"}]) == 1
    # then none was lost: they wait in memory, and the stats say why
    assert writer.pending == 3
    assert "AppTraces" in losses.snapshot()["store"]["error"]
    assert losses.snapshot()["problems"]["store"].startswith(
        f"cannot write the local store {store.path}")
    # and when the table is back, a flush writes them once, in order, and clears the problem
    store.sql('ALTER TABLE "_AppTracesAway" RENAME TO "_AppTraces"')
    assert writer.done(1000) is True
    assert [r[0] for r in store.sql('SELECT "Message" FROM "AppTraces"')] == ["m0", "m1", "m2"]
    assert losses.snapshot()["problems"] == {}
    assert losses.snapshot()["logs_dropped"]["store_failed"] == 0
    # stderr heard of the failure once, on one line, and of the recovery
    failed, recovered = notes.getvalue().splitlines()
    assert failed.startswith(f"telemetry: cannot write the local store {store.path} (")
    assert recovered == f"telemetry: the local store {store.path} takes writes again"
