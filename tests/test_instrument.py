"""The one-line helpers: sync jobs, adapter requests, queues, context binding and the cap."""

from __future__ import annotations

import socket

import pytest

from integration_monitoring import (
    METRICS,
    adapter_request,
    bind,
    get_logger,
    job_enqueued,
    message_failed,
    message_processed,
    record_queue_depth,
    sync_job,
)
from integration_monitoring.telemetry import is_connection_error
from integration_monitoring.testing import capture_telemetry

LABELS = {"tenant_id": "tenant-123", "integration_id": "salesforce-connection-1",
          "adapter_type": "salesforce", "entity": "contact"}


class RetryableError(Exception):
    retryable = True


def test_every_seed_metric_is_declared_with_unit_and_description():
    """The fifteen seed metrics exist with their exact names, a unit and a description."""
    seed = {"sync_jobs_total", "sync_jobs_processed_total", "sync_jobs_failed_total",
            "sync_records_created_total", "sync_records_updated_total", "sync_latency_ms",
            "sync_jobs_by_integration_total", "adapter_requests_total",
            "adapter_request_duration_seconds", "adapter_rate_limit_hits_total",
            "adapter_connection_failures_total", "service_bus_queue_depth",
            "service_bus_messages_processed_total", "service_bus_messages_failed_total",
            "service_bus_dlq_depth"}
    declared = {spec.name for spec in METRICS if spec.seed}
    assert declared == seed
    for spec in METRICS:
        assert spec.unit and spec.description, spec.name
    kinds = {spec.name: spec.kind for spec in METRICS}
    assert kinds["sync_latency_ms"] == kinds["adapter_request_duration_seconds"] == "histogram"
    assert kinds["service_bus_queue_depth"] == kinds["service_bus_dlq_depth"] == "gauge"


def test_completed_job_emits_events_and_metrics(captured):
    """A job that completes logs started/completed and counts transitions, records and latency."""
    # when a job is enqueued then runs to completion
    job_enqueued(**LABELS)
    with sync_job(**LABELS, sync_type="scheduled", task_id="task-456") as job:
        job.records(created=10, updated=3)
        job.records(created=2, failed=1)
    # then the events tell the story, with the bound task on every one
    assert captured.operations == ["sync.enqueued", "sync.started", "sync.completed"]
    done = captured.assert_event("sync.completed", level="info", taskId="task-456",
                                 syncType="scheduled", recordCount=16, recordsCreated=12,
                                 recordsUpdated=3, recordsFailed=1)
    assert done["metadata"]["duration"] >= 0
    # and the metrics carry the five labels
    for status in ("pending", "processing", "completed"):
        assert captured.metric("sync_jobs_total", status=status, **LABELS) == 1
    assert captured.metric("sync_jobs_processed_total", status="completed") == 1
    assert captured.metric("sync_jobs_failed_total") == 0
    assert captured.metric("sync_jobs_by_integration_total", **LABELS) == 1
    assert captured.metric("sync_records_created_total", **LABELS) == 12
    assert captured.metric("sync_records_updated_total", **LABELS) == 3
    assert captured.metric("sync_records_failed_total", **LABELS) == 1
    assert captured.histogram_count("sync_latency_ms", status="completed") == 1


def test_failed_job_reraises_the_callers_error_untouched(captured):
    """A job that raises logs sync.failed with the error, counts a failure, and re-raises."""
    error = RetryableError("Invalid session token")
    with pytest.raises(RetryableError) as raised, sync_job(**LABELS):
        raise error
    assert raised.value is error
    failed = captured.assert_event("sync.failed", level="error", error="Invalid session token",
                                   errorType="RetryableError", retryable=True)
    assert failed["tenantId"] == "tenant-123"
    assert captured.metric("sync_jobs_failed_total", status="failed", **LABELS) == 1
    assert captured.metric("sync_jobs_total", status="failed") == 1
    assert captured.histogram_count("sync_latency_ms", status="failed") == 1


def test_job_can_be_failed_without_raising(captured):
    """job.fail() records a failed job and returns normally."""
    with sync_job(**LABELS) as job:
        job.records(failed=5)
        job.fail("every record rejected", firstError="missing email")
    captured.assert_event("sync.failed", error="every record rejected",
                          firstError="missing email", recordsFailed=5)
    assert captured.metric("sync_jobs_failed_total") == 1


def test_job_shares_one_trace_across_its_records(captured):
    """Every log record of a job carries the job's trace id (Application Insights OperationId)."""
    with sync_job(**LABELS):
        get_logger("salesforce-adapter").info("fetch.page")
    get_logger("salesforce-adapter").info("outside")
    inside = {r.trace_id for r in captured.log_records if r.body != "outside"}
    outside = [r.trace_id for r in captured.log_records if r.body == "outside"]
    assert len(inside) == 1 and inside != {0}
    assert outside == [0]


@pytest.mark.parametrize(("status_code", "status"), [
    (200, "success"), (201, "success"), (304, "success"), (404, "client_error"),
    (429, "rate_limited"), (503, "server_error"), (None, "success"),
])
def test_adapter_request_status_classes(captured, status_code, status):
    """Requests are counted and timed by status class."""
    with adapter_request("hubspot", "fetch", entity="deal", tenant_id="t1",
                         integration_id="hs-1") as call:
        call.status_code = status_code
    labels = {"adapter_type": "hubspot", "entity": "deal", "tenant_id": "t1",
              "integration_id": "hs-1", "status": status}
    assert captured.metric("adapter_requests_total", **labels) == 1
    assert captured.histogram_count("adapter_request_duration_seconds", **labels) == 1
    assert captured.metric("adapter_rate_limit_hits_total") == (1 if status_code == 429 else 0)


def test_rate_limit_hit_warns_with_retry_after(captured):
    """A 429 counts a rate-limit hit and logs a warning with Retry-After, under the job's labels."""
    with sync_job(**LABELS), adapter_request(operation="fetch") as call:
        call.status_code, call.retry_after = 429, 30
    warning = captured.assert_event("fetch.rate_limited", level="warn", retryAfter=30,
                                    statusCode=429)
    assert warning["service"] == "salesforce-adapter"
    assert warning["integrationId"] == "salesforce-connection-1"
    assert captured.metric("adapter_rate_limit_hits_total", **LABELS) == 1


def test_connection_failure_is_counted_and_reraised(captured):
    """A refused connection counts a connection failure, logs an error and propagates."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(ConnectionRefusedError), adapter_request("salesforce", "fetch", **{
            k: v for k, v in LABELS.items() if k != "adapter_type"}):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    captured.assert_event("fetch.connection_failed", level="error",
                          errorType="ConnectionRefusedError", retryable=True)
    assert captured.metric("adapter_connection_failures_total", **LABELS) == 1
    assert captured.metric("adapter_requests_total", status="connection_failed") == 1


def test_other_errors_are_not_connection_failures(captured):
    """A parsing error inside a request is counted as an error, not a connection failure."""
    with pytest.raises(ValueError), adapter_request("salesforce", "fetch"):
        raise ValueError("bad JSON")
    assert captured.metric("adapter_requests_total", status="error") == 1
    assert captured.metric("adapter_connection_failures_total") == 0


def test_connection_errors_of_other_libraries_match_by_name():
    """httpx- or requests-style exception classes are recognised without importing them."""
    connect_error = type("ConnectError", (Exception,), {})
    read_timeout = type("ReadTimeout", (Exception,), {})
    assert is_connection_error(connect_error("x"))
    assert is_connection_error(read_timeout("x"))
    assert is_connection_error(TimeoutError())
    assert not is_connection_error(KeyError("x"))


def test_queue_helpers_record_depths_and_messages(captured):
    """Queue depth gauges and message counters carry the queue label."""
    record_queue_depth("sync-jobs", active=140, dead_letter=3)
    record_queue_depth("sync-jobs", active=120, dead_letter=4)
    with bind(**LABELS):
        message_processed("sync-jobs")
        message_failed("sync-jobs")
    assert captured.metric("service_bus_queue_depth", queue="sync-jobs") == 120
    assert captured.metric("service_bus_dlq_depth", queue="sync-jobs") == 4
    assert captured.metric("service_bus_messages_processed_total", queue="sync-jobs",
                           status="completed", **LABELS) == 1
    assert captured.metric("service_bus_messages_failed_total", queue="sync-jobs",
                           status="abandoned") == 1


def test_bound_context_fills_events_and_nests():
    """bind() fills tenant and integration and adds metadata; inner binds shadow outer ones."""
    with capture_telemetry() as captured:
        log = get_logger("sync-task-service")
        with bind(tenant_id="t1", integration_id="i1", task_id="task-1"):
            log.info("outer")
            with bind(integration_id="i2", page=2):
                log.info("inner")
            log.info("explicit", tenant_id="t9")
        log.info("unbound")
    outer, inner, explicit, unbound = captured.events
    assert (outer["tenantId"], outer["integrationId"], outer["metadata"]) == (
        "t1", "i1", {"taskId": "task-1"})
    assert (inner["integrationId"], inner["metadata"]) == ("i2", {"taskId": "task-1", "page": 2})
    assert explicit["tenantId"] == "t9"
    assert (unbound["tenantId"], unbound["metadata"]) == ("", {})


def test_cardinality_cap_sends_overflow_to_one_series_and_counts_it():
    """Beyond the cap, new label sets land in one overflow series and are counted."""
    with capture_telemetry(cardinality_limit=3) as captured:
        for tenant in range(10):
            captured.telemetry.metric("sync_jobs_total", 1, {"tenant_id": f"t{tenant}",
                                                             "status": "pending"})
        captured.telemetry.metric("sync_jobs_total", 1, {"tenant_id": "t0", "status": "pending"})
    series = captured.series("sync_jobs_total")
    assert len(series) == 4
    assert captured.metric("sync_jobs_total", **{"otel.metric.overflow": "true"}) == 7
    assert captured.metric("sync_jobs_total", tenant_id="t0") == 2
    assert captured.telemetry.stats()["series_overflowed"] == {"sync_jobs_total": 7}


def test_broken_sinks_are_counted_not_raised():
    """A failing stdout and a failing OpenTelemetry logger never reach the caller."""
    class BrokenStream:
        def write(self, _):
            raise OSError("disk full")

    class BrokenLoggerProvider:
        def get_logger(self, *_):
            raise RuntimeError("exporter gone")

    with capture_telemetry() as captured:
        captured.telemetry.stream = BrokenStream()
        captured.telemetry.stdout = True
        captured.telemetry.logger_provider = BrokenLoggerProvider()
        event = get_logger("x").error("still.returns", error="boom")
        with sync_job(**LABELS) as job:
            job.records(created=1)
    assert event is not None
    assert captured.telemetry.errors["stdout_failed"] == 3
    assert captured.telemetry.errors["otel_failed"] == 3
    assert captured.metric("sync_records_created_total") == 1


def test_odd_status_codes_and_keys_never_raise_into_the_caller(captured):
    """A status code given as text, or a non-text metadata key, is recorded, not raised."""
    with adapter_request("hubspot", "fetch") as call:
        call.status_code = "503"
    with pytest.raises(KeyError), adapter_request("hubspot", "fetch") as call:
        call.status_code = object()
        raise KeyError("the caller's own error survives")
    get_logger("x").log("info", "odd.keys", None, None, {1: "a"})
    assert captured.metric("adapter_requests_total", status="server_error") == 1
    assert captured.find("odd.keys")
