"""The local store holds what Application Insights would hold for the same telemetry.

The same emitted events and metrics go through the real Azure Monitor exporters (to an
ingestion endpoint on 127.0.0.1) and through our store exporters (to a DuckDB file); the
envelopes Azure would ingest and the rows we read back with KQL must agree.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import ssl
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.monitor.opentelemetry.exporter import (
    AzureMonitorLogExporter,
    AzureMonitorMetricExporter,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from integration_monitoring import (
    METRICS,
    Telemetry,
    adapter_request,
    get_logger,
    record_queue_depth,
    sync_job,
)
from integration_monitoring.store import StoreLogExporter, StoreMetricExporter, TelemetryStore

from .loopback.appinsights import AppInsightsLoopback

ROOT = Path(__file__).resolve().parent.parent
SERVICE_NAME = "parity-worker"
MESSAGE = "Microsoft.ApplicationInsights.Message"
METRIC = "Microsoft.ApplicationInsights.Metric"
OUR_METRICS = frozenset(spec.name for spec in METRICS)
ZERO_OPERATION_ID = "0" * 32
#: Keep the exporters away from Microsoft's own endpoints (statsbeat, OneSettings) and
#: their self-diagnostics metrics off our ingestion endpoint.
QUIET_AZURE = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
}
HOUR_MS = 3_600_000
#: Metadata Azure would read as instructions or cut, and values JSON has no type for.
EDGE_METADATA = {
    "exception.type": "ValueError", "microsoft.custom_event.name": "evt", "session.id": "s1",
    "ai.operation.name": "op", "http.client_ip": "10.0.0.1", "k" * 151: "key too long",
    "big": "x" * 9000, "nan": float("nan"), "when": dt.datetime(2024, 1, 2, 3, 4, 5),
    "blob": b"abc", "unicode": "Grüße 🚀",
}


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def appinsights() -> Iterator[AppInsightsLoopback]:
    """An Application Insights ingestion endpoint on 127.0.0.1, over HTTPS."""
    with AppInsightsLoopback() as server:
        yield server


@dataclass
class Parity:
    """What one workload left on each side."""

    events: list[dict[str, Any]]  # what Telemetry emitted, in seed shape
    messages: list[dict[str, Any]]  # Azure Message envelopes of those events
    metric_envelopes: list[dict[str, Any]]  # Azure Metric envelopes of our metrics
    traces: list[dict[str, Any]]  # local AppTraces rows
    metrics: list[dict[str, Any]]  # local AppMetrics rows


@pytest.fixture(scope="module")
def parity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parity]:
    """Run the workload once through both exporters and collect both sides."""
    with pytest.MonkeyPatch.context() as env, AppInsightsLoopback() as ingestion:
        for name, value in QUIET_AZURE.items():
            env.setenv(name, value)
        store = TelemetryStore(tmp_path_factory.mktemp("parity") / "t.duckdb")
        azure = {"connection_string": ingestion.connection_string,
                 "disable_offline_storage": True, "connection_verify": ingestion.ca_path}
        resource = Resource.create({"service.name": SERVICE_NAME})
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(
            SimpleLogRecordProcessor(AzureMonitorLogExporter(**azure)))
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(StoreLogExporter(store)))
        meter_provider = MeterProvider(resource=resource, metric_readers=[
            PeriodicExportingMetricReader(AzureMonitorMetricExporter(**azure),
                                          export_interval_millis=HOUR_MS),
            PeriodicExportingMetricReader(StoreMetricExporter(store),
                                          export_interval_millis=HOUR_MS),
        ])
        telemetry = Telemetry(logger_provider=logger_provider, meter_provider=meter_provider,
                              tracer_provider=TracerProvider(resource=resource), stdout=False)
        events: list[dict[str, Any]] = []
        telemetry.add_listener(events.append)
        try:
            run_workload(telemetry)
            assert telemetry.flush(), "a provider failed to flush"
            operations = {event["operation"] for event in events}
            envelopes = ingestion.wait_for(
                lambda got: len(_ours(got, MESSAGE, operations)) >= len(events))
            yield Parity(
                events=events,
                messages=_ours(envelopes, MESSAGE, operations),
                metric_envelopes=_ours(envelopes, METRIC, OUR_METRICS),
                traces=[{**row, "Properties": json.loads(row["Properties"])}
                        for row in store.kql(
                            "AppTraces | project TimeGenerated, Message, SeverityLevel, "
                            "Properties, OperationId, ParentId, AppRoleName, "
                            "AppRoleInstance").dicts()],
                metrics=[{**row, "Properties": json.loads(row["Properties"])}
                         for row in store.kql(
                             "AppMetrics | where Name in ('"
                             + "', '".join(sorted(OUR_METRICS))
                             + "') | project Name, Sum, ItemCount, Min, Max, Properties, "
                             "AppRoleName, AppRoleInstance").dicts()],
            )
        finally:
            logger_provider.shutdown()
            meter_provider.shutdown()
            store.close()


def run_workload(telemetry: Telemetry) -> None:
    """Adapter and sync-service telemetry through the public API only."""
    log = get_logger("salesforce-adapter", telemetry)
    ids = {"tenant_id": "tenant-1", "integration_id": "sf-1"}
    log.info("contacts.fetched", **ids, record_count=5, ratio=0.25, dry_run=True,
             filters={"since": "2024-01-01", "limit": 100}, ids=[1, 2, 3], cursor=None,
             client_secret="hunter2")
    log.warn("contacts.slow", **ids, duration=1234.5)
    log.info("edge.values", **ids, **EDGE_METADATA)
    log.error("contacts.write_failed", **ids, error="Invalid session token", retryable=False)
    job = {**ids, "adapter_type": "salesforce", "entity": "contact", "telemetry": telemetry}
    with sync_job(**job, task_id="task-ok") as done:
        log.info("page.written", page=1)
        done.records(created=3, updated=2, failed=1)
    with pytest.raises(RuntimeError), sync_job(**job, task_id="task-boom") as failing:
        failing.records(created=1)
        raise RuntimeError("upstream exploded")
    with adapter_request("salesforce", "contacts.fetch", entity="contact", **ids,
                         telemetry=telemetry) as call:
        call.status_code = 429
        call.retry_after = 2.5
    record_queue_depth("sync-jobs", 7, 1, telemetry=telemetry)


def _ours(envelopes: list[dict[str, Any]], kind: str, names: set[str] | frozenset[str]
          ) -> list[dict[str, Any]]:
    """Envelopes of one kind whose message (logs) or metric name (metrics) is ours."""
    found = []
    for envelope in envelopes:
        if envelope.get("name") != kind:
            continue
        base = envelope["data"]["baseData"]
        name = base["message"] if kind == MESSAGE else base["metrics"][0]["name"]
        if name in names:
            found.append(envelope)
    return found


def _sorted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=str))


def _azure_trace(envelope: dict[str, Any]) -> dict[str, Any]:
    base, tags = envelope["data"]["baseData"], envelope["tags"]
    return {
        "Message": base["message"],
        "SeverityLevel": base["severityLevel"],
        "Properties": base["properties"],
        "OperationId": tags["ai.operation.id"],
        "ParentId": tags["ai.operation.parentId"],
        "AppRoleName": tags["ai.cloud.role"],
        "AppRoleInstance": tags["ai.cloud.roleInstance"],
    }


def _azure_metric(envelope: dict[str, Any]) -> dict[str, Any]:
    base = envelope["data"]["baseData"]
    point = base["metrics"][0]
    return {
        "Name": point["name"],
        "Sum": point["value"],
        "ItemCount": point["count"],
        # Ingestion rule: a point sent without min/max (counters, gauges) is stored with
        # Min = Max = its value.
        "Min": point.get("min", point["value"]),
        "Max": point.get("max", point["value"]),
        "Properties": base["properties"],
        "AppRoleName": envelope["tags"]["ai.cloud.role"],
        "AppRoleInstance": envelope["tags"]["ai.cloud.roleInstance"],
    }


def _series(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Rows keyed by metric name and labels; fails if a series appears twice."""
    keyed: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = (row["Name"], *sorted(row["Properties"].items()))
        assert key not in keyed, f"series exported twice: {key}"
        keyed[key] = row
    return keyed


# -- the loopback server itself --------------------------------------------------------------


def test_loopback_accepts_gzip_and_ndjson_and_fails_on_request(appinsights):
    """The ingestion endpoint records gzip and newline-delimited bodies and fails when told."""
    # given a client that trusts the loopback CA
    context = ssl.create_default_context(cafile=appinsights.ca_path)

    def post(body: bytes, **headers: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(appinsights.url + "v2.1/track", data=body,
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, context=context, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    # when it posts a gzip JSON array, then NDJSON, then once while the server fails
    gzipped = post(gzip.compress(json.dumps([{"name": "a"}, {"name": "b"}]).encode()),
                   **{"Content-Encoding": "gzip"})
    ndjson = post(b'{"name": "c"}\n{"name": "d"}\n{"name": "e"}\n')
    appinsights.fail_next(1, 503)
    failed = post(json.dumps([{"name": "f"}]).encode())
    after = post(json.dumps([{"name": "g"}]).encode())

    # then each accepted batch is answered with its count and recorded, the failed one is not
    assert gzipped == (200, {"itemsReceived": 2, "itemsAccepted": 2, "errors": []})
    assert ndjson == (200, {"itemsReceived": 3, "itemsAccepted": 3, "errors": []})
    assert failed[0] == 503
    assert after[0] == 200
    names = [e["name"] for e in appinsights.wait_for(lambda got: len(got) >= 6)]
    assert names == ["a", "b", "c", "d", "e", "g"]
    assert len(appinsights.requests) == 4


# -- logs ------------------------------------------------------------------------------------


def test_every_event_reaches_azure_and_the_store_once(parity):
    """Each emitted event arrives once as a Message envelope and once as an AppTraces row."""
    # given the workload sent both ways
    # when we count messages on each side
    emitted = Counter(event["operation"] for event in parity.events)
    azure = Counter(e["data"]["baseData"]["message"] for e in parity.messages)
    local = Counter(row["Message"] for row in parity.traces)
    # then both sides hold exactly what was emitted
    assert azure == emitted
    assert local == emitted


def test_log_rows_match_azure_envelopes(parity):
    """Message, SeverityLevel, Properties, OperationId, ParentId and role agree record by record."""
    # given the workload sent both ways
    # when both sides are put in the same shape
    azure = [_azure_trace(envelope) for envelope in parity.messages]
    local = [{key: value for key, value in row.items() if key != "TimeGenerated"}
             for row in parity.traces]
    # then they are the same records
    assert _sorted(local) == _sorted(azure)
    assert {row["AppRoleName"] for row in local} == {SERVICE_NAME}


def test_log_times_match_azure_envelopes(parity):
    """TimeGenerated is the envelope's time, to the microsecond."""
    # given the workload sent both ways, each record identified by message and properties
    def key(message: str, properties: dict[str, str]) -> str:
        return message + json.dumps(properties, sort_keys=True)

    # when the times of the same records are paired
    azure = {key(e["data"]["baseData"]["message"], e["data"]["baseData"]["properties"]):
             dt.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).replace(tzinfo=None)
             for e in parity.messages}
    local = {key(row["Message"], row["Properties"]): row["TimeGenerated"]
             for row in parity.traces}
    # then they differ by at most 1 µs: Azure rounds float seconds, we truncate nanoseconds
    assert azure.keys() == local.keys()
    for record, when in azure.items():
        assert dt.timedelta(0) <= when - local[record] <= dt.timedelta(microseconds=1), record


def test_metadata_of_every_type_becomes_the_same_property_strings(parity):
    """Metadata of every type arrives as the same strings; None is dropped, secrets hidden."""
    # given an info event with metadata of many types
    expected = {
        "recordCount": "5", "ratio": "0.25", "dryRun": "true",
        "filters": '{"since":"2024-01-01","limit":100}', "ids": "[1,2,3]",
        "clientSecret": "[REDACTED]",
        "service": "salesforce-adapter", "operation": "contacts.fetched",
        "tenantId": "tenant-1", "integrationId": "sf-1", "logger_name": "salesforce-adapter",
    }
    # when it is read on both sides
    (azure,) = [e["data"]["baseData"]["properties"] for e in parity.messages
                if e["data"]["baseData"]["message"] == "contacts.fetched"]
    (local,) = [row["Properties"] for row in parity.traces if row["Message"] == "contacts.fetched"]
    # then both hold exactly these strings
    assert azure == expected
    assert local == expected


def test_metadata_azure_would_obey_is_renamed_and_cut_the_same(parity):
    """Metadata named like Azure's instruction attributes stays data; long keys/values cut."""
    # given an event whose metadata looks like exception, custom-event and session attributes
    # when it is read on both sides
    (envelope,) = [e for e in parity.messages if e["data"]["baseData"]["message"] == "edge.values"]
    (local,) = [row["Properties"] for row in parity.traces if row["Message"] == "edge.values"]
    azure = envelope["data"]["baseData"]["properties"]
    # then Azure keeps it a Message (not an exception or custom event) with our properties
    assert envelope["data"]["baseType"] == "MessageData"
    assert local == azure
    assert {"metadata.exception.type", "metadata.session.id", "metadata.ai.operation.name",
            "metadata.microsoft.customEvent.name"} <= azure.keys()
    assert "ai.operation.name" not in envelope["tags"]
    assert len(azure["big"]) == 8192
    assert all(len(key) <= 150 for key in azure)
    assert (azure["nan"], azure["when"], azure["blob"], azure["unicode"]) == (
        "nan", "2024-01-02T03:04:05.000Z", "<3 bytes>", "Grüße 🚀")


def test_info_warn_error_are_severity_1_2_3(parity):
    """info, warn and error map to SeverityLevel 1, 2 and 3 on both sides."""
    # given one event per level
    levels = {"contacts.fetched": 1, "contacts.slow": 2, "contacts.write_failed": 3,
              "contacts.fetch.rate_limited": 2, "sync.failed": 3, "sync.completed": 1}
    # when their severities are read
    azure = {e["data"]["baseData"]["message"]: e["data"]["baseData"]["severityLevel"]
             for e in parity.messages if e["data"]["baseData"]["message"] in levels}
    local = {row["Message"]: row["SeverityLevel"] for row in parity.traces
             if row["Message"] in levels}
    # then they are the Application Insights levels
    assert azure == levels
    assert local == levels


def test_records_of_one_sync_job_share_one_operation_id(parity):
    """Inside a sync job every AppTraces row has the job's OperationId, which is not all zeros."""
    # given two sync jobs and events outside any job
    def operation_ids(task: str) -> set[str]:
        return {row["OperationId"] for row in parity.traces
                if row["Properties"].get("taskId") == task}

    # when the operation ids of each job's rows are collected
    ok, boom = operation_ids("task-ok"), operation_ids("task-boom")
    outside = {row["OperationId"] for row in parity.traces if "taskId" not in row["Properties"]}
    # then each job has one, its own, and events outside a job have none
    assert len(ok) == 1 and len(boom) == 1
    assert ok != boom
    assert ZERO_OPERATION_ID not in ok | boom
    assert outside == {ZERO_OPERATION_ID}
    messages = {row["Message"] for row in parity.traces
                if row["Properties"].get("taskId") == "task-ok"}
    assert messages == {"sync.started", "page.written", "sync.completed"}


# -- metrics ---------------------------------------------------------------------------------


def test_metric_series_match_azure_envelopes(parity):
    """Name, Sum, ItemCount, Min, Max and Properties agree for every series of our metrics."""
    # given the workload's metrics exported once both ways
    # when both sides are keyed by name and labels
    azure = _series([_azure_metric(envelope) for envelope in parity.metric_envelopes])
    local = _series(parity.metrics)
    # then the same series hold the same values
    assert sorted(local) == sorted(azure)
    assert local == azure
    names = {key[0] for key in local}
    assert {"sync_jobs_total", "sync_latency_ms", "sync_records_created_total",
            "adapter_requests_total", "adapter_request_duration_seconds",
            "adapter_rate_limit_hits_total", "service_bus_queue_depth",
            "service_bus_dlq_depth"} <= names


def test_counter_and_histogram_rows_follow_the_ingestion_rules(parity):
    """Counters are stored with Min = Max = Sum; histograms carry count, min and max."""
    # given the workload's metrics on the local side
    rows = {(row["Name"], row["Properties"].get("status"), row["Properties"].get("queue")): row
            for row in parity.metrics}
    # when a counter, a gauge and a histogram series are read
    created = rows[("sync_records_created_total", None, None)]
    depth = rows[("service_bus_queue_depth", None, "sync-jobs")]
    latency = rows[("sync_latency_ms", "completed", None)]
    # then counters and gauges are single points, histograms aggregates
    assert (created["Sum"], created["Min"], created["Max"], created["ItemCount"]) == (4, 4, 4, 1)
    assert (depth["Sum"], depth["Min"], depth["Max"], depth["ItemCount"]) == (7, 7, 7, 1)
    assert latency["ItemCount"] == 1
    assert latency["Min"] == latency["Max"] == latency["Sum"] >= 0
    azure = [e["data"]["baseData"]["metrics"][0] for e in parity.metric_envelopes]
    assert all("min" not in point for point in azure
               if point["name"] in {"sync_records_created_total", "service_bus_queue_depth"})
    assert all({"min", "max"} <= point.keys() for point in azure
               if point["name"] == "sync_latency_ms")


# -- configure_telemetry against Application Insights ------------------------------------------

_CONFIGURED_PROCESS = textwrap.dedent("""
    import logging
    import sys

    from integration_monitoring import flush, get_logger
    from integration_monitoring.telemetry import configure_telemetry

    configure_telemetry("hubspot-worker", connection_string=sys.argv[1],
                        disable_offline_storage=True, enable_live_metrics=False,
                        enable_performance_counters=False)
    logging.getLogger("hubspot-adapter").warning("retrying", extra={
        "operation": "fetch.retry", "tenantId": "t2", "integrationId": "hs-1", "attempt": 2})
    get_logger("hubspot-adapter").info("contacts.fetched", tenant_id="t2",
                                       integration_id="hs-1", record_count=3)
    assert flush(), "flush failed"
""")


def test_configured_process_sends_each_record_once(appinsights):
    """With a connection string, a stdlib record and a structured event each reach Azure once."""
    # given a process configured for Application Insights that trusts the loopback CA
    env = {key: value for key, value in os.environ.items()
           if key != "APPLICATIONINSIGHTS_CONNECTION_STRING"}
    env.update(QUIET_AZURE, SSL_CERT_FILE=appinsights.ca_path,
               REQUESTS_CA_BUNDLE=appinsights.ca_path, TELEMETRY_STDOUT="false")
    # when it logs through stdlib logging and get_logger, flushes and exits
    command = [sys.executable, "-c", _CONFIGURED_PROCESS, appinsights.connection_string]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # then each record arrived exactly once, as a Message with the seed's properties
    messages = [e for e in appinsights.envelopes if e["name"] == MESSAGE]
    by_message = Counter(e["data"]["baseData"]["message"] for e in messages)
    assert by_message == {"fetch.retry": 1, "contacts.fetched": 1}, by_message
    (retry,) = [e for e in messages if e["data"]["baseData"]["message"] == "fetch.retry"]
    assert retry["data"]["baseData"]["severityLevel"] == 2
    assert retry["data"]["baseData"]["properties"] == {
        "service": "hubspot-adapter", "operation": "fetch.retry", "tenantId": "t2",
        "integrationId": "hs-1", "attempt": "2", "message": "retrying",
        "logger_name": "hubspot-adapter",
    }
    assert retry["tags"]["ai.cloud.role"] == "hubspot-worker"
    (fetched,) = [e for e in messages if e["data"]["baseData"]["message"] == "contacts.fetched"]
    assert fetched["data"]["baseData"]["severityLevel"] == 1
    assert fetched["data"]["baseData"]["properties"] == {
        "service": "hubspot-adapter", "operation": "contacts.fetched", "tenantId": "t2",
        "integrationId": "hs-1", "recordCount": "3", "logger_name": "hubspot-adapter",
    }
