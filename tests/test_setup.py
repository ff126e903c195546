"""configure_telemetry in local mode, and flush's promise to return on time."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from integration_monitoring import Telemetry, get_logger
from integration_monitoring.store import TelemetryStore

from .helpers import ROOT, project_env


class HangingExporter(LogRecordExporter):
    """An exporter whose endpoint accepted the connection and never answers."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, batch):
        self.release.wait(30)
        return LogRecordExportResult.SUCCESS

    def shutdown(self):
        self.release.set()

    def force_flush(self, timeout_millis=30_000):
        return True


def test_flush_returns_within_its_timeout_when_the_exporter_hangs():
    """flush(timeout_millis=300) gives up after about 300 ms and says it did not finish."""
    # given a batch pipeline whose exporter never returns
    exporter = HangingExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=10))
    telemetry = Telemetry(logger_provider=provider, meter_provider=MeterProvider(),
                          tracer_provider=TracerProvider(), stdout=False)
    for i in range(100):
        get_logger("x", telemetry).info("queued", n=i)
    # when the caller flushes with a short timeout
    started = time.monotonic()
    finished = telemetry.flush(timeout_millis=300)
    elapsed = time.monotonic() - started
    exporter.release.set()
    provider.shutdown()
    # then it returns on time, reporting that not everything went out
    assert finished is False
    assert elapsed < 10  # the exporter never returns: anything bounded is the timeout at work


def test_local_mode_stores_events_and_metrics_and_keeps_metrics_off_by_default(tmp_path):
    """A configured process writes AppTraces and AppMetrics rows; /metrics needs opting in."""
    script = """
import json
from integration_monitoring import configure_telemetry, sync_job, flush
from integration_monitoring.telemetry import configured, current
configure_telemetry("worker")
with sync_job(tenant_id="t1", integration_id="sf-1", adapter_type="salesforce",
              entity="contact") as job:
    job.records(created=4)
print("RESULT", json.dumps({"flushed": flush(), "mode": configured().mode,
                            "prometheus": configured().prometheus is not None,
                            "stats": current().stats()}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=project_env(tmp_path))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    stats = result.pop("stats")
    assert result == {"flushed": True, "mode": "local", "prometheus": False}
    # nothing was lost on the way, and the store's writer holds nothing back
    assert stats["logs_dropped"] == {"queue_full": 0, "export_failed": 0, "store_failed": 0,
                                     "shutdown": 0}
    assert stats["metric_exports_failed"] == 0
    assert stats["problems"] == {}
    assert stats["store"] == {"path": str(tmp_path / "telemetry.duckdb"), "pending_rows": 0,
                              "failed_writes": 0, "error": None}
    store = TelemetryStore(tmp_path / "telemetry.duckdb")
    traces = store.kql("AppTraces | project Message, AppRoleName | order by Message asc").rows
    created = store.kql(
        'AppMetrics | where Name == "sync_records_created_total" | summarize sum(Sum)').rows
    store.close()
    assert traces == [("sync.completed", "worker"), ("sync.started", "worker")]
    assert created == [(4.0,)]
