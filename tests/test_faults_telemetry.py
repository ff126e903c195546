"""Telemetry under faults: what the caller gets, and that every lost record is counted.

The Application Insights exporter is the real one, pointed at 127.0.0.1 (a closed port, or
an ingestion endpoint that fails on request); the local store is a real DuckDB file made
unwritable at the operating system's boundary (RLIMIT_FSIZE in a child process) or held
by another process.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.monitor.opentelemetry.exporter import (
    AzureMonitorLogExporter,
    AzureMonitorMetricExporter,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider

from integration_monitoring import Telemetry, get_logger
from integration_monitoring.store import StoreLocked, StoreLogExporter, TelemetryStore
from integration_monitoring.telemetry import CountedBatchLogRecordProcessor, CountedMetricExporter
from integration_monitoring.telemetry._core import Losses

from .helpers import ROOT, free_port, project_env
from .loopback.appinsights import INSTRUMENTATION_KEY, QUIET_EXPORTER_ENV, AppInsightsLoopback

MESSAGE = "Microsoft.ApplicationInsights.Message"
HOUR_MS = 3_600_000
LABELS = {"tenant_id": "t1", "integration_id": "sf-1", "adapter_type": "salesforce"}
#: azure-core's retry policy, made quick: it still retries 500/503 and refused connections
#: three times, with waits of a few milliseconds instead of seconds.
QUICK_RETRIES = {"retry_backoff_factor": 0.01}


@pytest.fixture(autouse=True)
def quiet_exporters(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in QUIET_EXPORTER_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def ingestion() -> Iterator[AppInsightsLoopback]:
    with AppInsightsLoopback() as server:
        yield server


class Pipeline:
    """Telemetry over the counted pipelines `configure_telemetry` builds, on any exporters."""

    def __init__(self, log_exporter: Any, metric_exporter: Any = None, **queue: Any) -> None:
        # No timer exports: a batch goes out when it is full or on flush, as the test says.
        queue.setdefault("schedule_delay_millis", HOUR_MS)
        self.losses = Losses()
        self.processor = CountedBatchLogRecordProcessor(log_exporter, self.losses, **queue)
        self.logs = LoggerProvider()
        self.logs.add_log_record_processor(self.processor)
        readers, counted = [], None
        if metric_exporter is not None:
            counted = CountedMetricExporter(metric_exporter, self.losses)
            readers.append(PeriodicExportingMetricReader(counted,
                                                         export_interval_millis=HOUR_MS))
        self.metrics = MeterProvider(metric_readers=readers)
        self.telemetry = Telemetry(logger_provider=self.logs, meter_provider=self.metrics,
                                   tracer_provider=TracerProvider(), stdout=False,
                                   losses=self.losses)
        if counted is not None:  # as configure_telemetry does
            self.telemetry.add_flusher(counted.last_export_ok)
        self.emitted = 0

    def emit(self, count: int, operation: str = "contacts.fetched") -> float:
        """Log `count` events; returns the seconds the caller spent."""
        log = get_logger("salesforce-adapter", self.telemetry)
        started = time.perf_counter()
        for n in range(count):
            event = log.info(operation, tenant_id="t1", integration_id="sf-1", n=n)
            assert event is not None  # the caller always gets its event back
        self.emitted += count
        return time.perf_counter() - started

    def dropped(self) -> dict[str, int]:
        return self.telemetry.stats()["logs_dropped"]

    def close(self) -> None:
        self.metrics.shutdown()
        self.logs.shutdown()


def azure_exporters(connection_string: str, ca_path: str | None) -> dict[str, Any]:
    options = {"connection_string": connection_string, "disable_offline_storage": True,
               "connection_verify": ca_path, **QUICK_RETRIES}
    return {"log_exporter": AzureMonitorLogExporter(**options),
            "metric_exporter": AzureMonitorMetricExporter(**options)}


def messages(ingestion: AppInsightsLoopback, operation: str) -> int:
    return sum(1 for e in ingestion.envelopes
               if e["name"] == MESSAGE and e["data"]["baseData"]["message"] == operation)


# -- Application Insights ingestion unreachable or failing ------------------------------------


def test_unreachable_ingestion_endpoint_costs_the_caller_nothing_and_every_loss_is_counted():
    """Connection refused: emitting is not slowed, flush returns within its timeout saying
    it failed, and every record and metric point is counted as lost."""
    # given the Azure exporters pointed at a port where nothing listens
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    pipeline = Pipeline(**azure_exporters(
        f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint=https://127.0.0.1:{closed}/",
        None))
    try:
        # when the caller logs 200 events and counts records for three entities
        spent = pipeline.emit(200)
        for entity in ("contact", "deal", "ticket"):
            pipeline.telemetry.metric("sync_records_created_total", 5,
                                      {**LABELS, "entity": entity})
        started = time.monotonic()
        flushed = pipeline.telemetry.flush(timeout_millis=3000)
        flush_seconds = time.monotonic() - started
        stats = pipeline.telemetry.stats()
        # and then only counts one more series
        pipeline.telemetry.metric("sync_records_updated_total", 1, {**LABELS, "entity": "deal"})
        metrics_only = pipeline.telemetry.flush(timeout_millis=3000)
    finally:
        pipeline.close()
    # then the caller was never held up, flush said the data did not get out, on time
    assert spent < 0.5, f"emitting 200 events took {spent:.3f}s"
    assert flushed is False
    assert flush_seconds < 3.5
    # and what was lost is counted: every record, the metric export and its three points
    assert stats["logs_dropped"] == {"queue_full": 0, "export_failed": 200, "store_failed": 0,
                                     "shutdown": 0}
    assert stats["metric_exports_failed"] == 1
    assert stats["metric_points_dropped"]["export_failed"] == 3
    assert "log export failing: AzureMonitorLogExporter" in stats["problems"]["log_export"]
    # a flush with only metrics to send says so too, and counts the one point
    assert metrics_only is False
    assert pipeline.telemetry.stats()["metric_points_dropped"]["export_failed"] == 4


def test_brief_500s_are_retried_by_the_exporter_and_nothing_is_lost(ingestion):
    """Two 500s in a row are within the exporter's retries: every record arrives once."""
    # given an ingestion endpoint that answers the next two requests with 500
    pipeline = Pipeline(**azure_exporters(ingestion.connection_string, ingestion.ca_path))
    ingestion.fail_next(2, status=500)
    try:
        # when 20 events are logged and flushed
        pipeline.emit(20)
        flushed = pipeline.telemetry.flush(timeout_millis=3000)
    finally:
        pipeline.close()
    # then the third attempt delivered all of them, and nothing counts as lost
    assert flushed is True
    assert messages(ingestion, "contacts.fetched") == 20
    assert len(ingestion.requests) == 3
    assert pipeline.dropped() == {"queue_full": 0, "export_failed": 0, "store_failed": 0,
                                  "shutdown": 0}


@pytest.mark.parametrize(("status", "failures"), [(500, 4), (429, 1)],
                         ids=["500-beyond-retries", "429-throttled"])
def test_an_outage_the_exporter_gives_up_on_is_counted_and_later_records_arrive(
        ingestion, status, failures):
    """500s for longer than the retries (or a 429, which the exporter does not retry without
    Retry-After) lose that batch, counted; once the endpoint answers, records arrive."""
    # given an ingestion endpoint failing the next requests with `status`
    pipeline = Pipeline(**azure_exporters(ingestion.connection_string, ingestion.ca_path))
    ingestion.fail_next(failures, status=status)
    try:
        # when 30 events are logged and flushed during the outage, then 10 after it
        pipeline.emit(30, "during.outage")
        during = pipeline.telemetry.flush(timeout_millis=3000)
        dropped_during = pipeline.dropped()["export_failed"]
        pipeline.emit(10, "after.outage")
        after = pipeline.telemetry.flush(timeout_millis=3000)
    finally:
        pipeline.close()
    # then the first flush reports the loss and the 30 are counted, the 10 arrived
    assert (during, after) == (False, True)
    assert dropped_during == 30
    assert messages(ingestion, "during.outage") == 0
    assert messages(ingestion, "after.outage") == 10
    assert len(ingestion.requests) == failures + 1
    # and every emitted record is either delivered or counted
    dropped = pipeline.dropped()
    assert dropped == {"queue_full": 0, "export_failed": 30, "store_failed": 0, "shutdown": 0}
    assert pipeline.emitted == 40 == sum(dropped.values()) + messages(ingestion, "after.outage")


def test_a_configured_process_counts_what_azure_ingestion_refuses(ingestion, tmp_path):
    """configure_telemetry's Azure pipelines count the losses: /api/health shows them."""
    script = textwrap.dedent("""
        import json, sys
        from integration_monitoring import flush, get_logger
        from integration_monitoring.telemetry import configure_telemetry, current
        configure_telemetry("worker", connection_string=sys.argv[1], stdout=False,
                            disable_offline_storage=True, enable_live_metrics=False,
                            enable_performance_counters=False, retry_backoff_factor=0.01)
        for n in range(7):
            get_logger("hubspot-adapter").info("contacts.fetched", n=n)
        current().metric("sync_records_created_total", 3, {"tenant_id": "t1",
                         "integration_id": "hs-1", "adapter_type": "hubspot",
                         "entity": "contact"})
        print("RESULT", json.dumps({"flushed": flush(3000), "stats": current().stats()}))
    """)
    # given an ingestion endpoint that answers 503 to everything for now
    ingestion.fail_next(100, status=503)
    env = project_env(tmp_path, **QUIET_EXPORTER_ENV, SSL_CERT_FILE=ingestion.ca_path,
                      REQUESTS_CA_BUNDLE=ingestion.ca_path)
    # when a configured process logs 7 events, counts one series and flushes
    done = subprocess.run([sys.executable, "-c", script, ingestion.connection_string],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    # then it exits normally, its flush says the data did not get out, and stats count it
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["flushed"] is False
    assert result["stats"]["logs_dropped"]["export_failed"] == 7
    assert result["stats"]["metric_exports_failed"] == 1
    assert result["stats"]["metric_points_dropped"]["export_failed"] == 1
    assert "telemetry: dropping log records (export_failed, 7 so far)" in done.stderr


# -- pressure -----------------------------------------------------------------------------------


@pytest.mark.parametrize("destination", ["store", "azure"])
def test_a_burst_larger_than_the_queue_drops_exactly_what_was_not_exported(
        destination, tmp_path, request):
    """3000 events at once into a 64-record queue: emitted = exported + counted as dropped."""
    # given a small queue in front of the local store or Application Insights
    queue = {"max_queue_size": 64, "max_export_batch_size": 16, "schedule_delay_millis": 5}
    if destination == "store":
        store = TelemetryStore(tmp_path / "t.duckdb")
        request.addfinalizer(store.close)
        pipeline = Pipeline(StoreLogExporter(store), **queue)

        def exported() -> int:
            return store.sql('SELECT count(*) FROM "AppTraces"')[0][0]
    else:
        ingestion = request.getfixturevalue("ingestion")
        pipeline = Pipeline(azure_exporters(ingestion.connection_string,
                                            ingestion.ca_path)["log_exporter"], **queue)

        def exported() -> int:
            return messages(ingestion, "contacts.fetched")
    try:
        # when the caller emits a burst far faster than one exporter thread can send
        spent = pipeline.emit(3000)
        flushed = pipeline.telemetry.flush(timeout_millis=5000)
    finally:
        pipeline.close()
    # then the burst did not wait for the exporter, and each record went out or was counted
    dropped = pipeline.dropped()
    assert spent < 2.0
    assert flushed is True
    assert dropped["queue_full"] > 0, "the burst never filled the queue"
    assert dropped == {"queue_full": dropped["queue_full"], "export_failed": 0,
                       "store_failed": 0, "shutdown": 0}
    assert dropped["queue_full"] == 3000 - exported()
    assert pipeline.processor.queued == 0


def test_records_emitted_after_shutdown_are_counted(tmp_path):
    """A record logged after the pipeline stopped is counted, and the caller still gets it."""
    store = TelemetryStore(tmp_path / "t.duckdb")
    pipeline = Pipeline(StoreLogExporter(store))
    pipeline.emit(3, "before.stop")
    pipeline.close()
    pipeline.emit(2, "after.stop")
    stored = store.kql("AppTraces | summarize count() by Message").rows
    store.close()
    assert stored == [("before.stop", 3)]
    assert pipeline.dropped()["shutdown"] == 2


# -- the local store's disk full ------------------------------------------------------------

#: Run in a child: SIGXFSZ ignored, so a write past RLIMIT_FSIZE fails with EFBIG, which is
#: what DuckDB sees on a full disk too: a failed write.
_DISK = """
import json, os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

def disk_full(path):
    '''From now on no file the store writes may grow.'''
    sizes = [os.path.getsize(p) for p in (path, path + ".wal") if os.path.exists(p)]
    resource.setrlimit(resource.RLIMIT_FSIZE, (min(sizes), hard))

def disk_freed():
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))

def report(**values):
    print("RESULT", json.dumps(values, default=str), flush=True)
"""

_CONFIGURED_DISK_FULL = _DISK + """
from integration_monitoring import flush, get_logger
from integration_monitoring.telemetry import configure_telemetry, current, shutdown_telemetry
path = sys.argv[1]
configure_telemetry("worker", db_path=path, stdout=False)
log = get_logger("worker")
for n in range(5):
    log.info("before.full", n=n)
report(phase="before", flushed=flush(3000))
disk_full(path)
for n in range(40):
    log.info("while.full", n=n)
current().metric("sync_records_created_total", 2, {"tenant_id": "t1", "integration_id": "sf-1",
                 "adapter_type": "salesforce", "entity": "contact"})
report(phase="full", flushed=flush(3000), stats=current().stats())
disk_freed()
report(phase="freed", flushed=flush(3000), stats=current().stats())
shutdown_telemetry()
"""


def _results(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert done.returncode == 0, done.stderr
    results = [json.loads(line.split("RESULT ", 1)[1]) for line in done.stdout.splitlines()
               if line.startswith("RESULT ")]
    return {result.pop("phase"): result for result in results}


def test_a_full_disk_keeps_the_rows_reports_it_and_writes_them_when_space_returns(tmp_path):
    """The configured local pipeline on a full disk: flush says so, stats and stderr name
    the store and the error, nothing is dropped; once space returns every row is written."""
    db = tmp_path / "telemetry.duckdb"
    # when a configured process logs while its store's disk is full, then after it is freed
    done = subprocess.run([sys.executable, "-c", _CONFIGURED_DISK_FULL, str(db)], cwd=ROOT,
                          env=project_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    phases = _results(done)
    # then before, everything was written
    assert phases["before"]["flushed"] is True
    # while full, flush reports failure, and the stats say what is wrong and what is kept
    full = phases["full"]
    assert full["flushed"] is False
    store = full["stats"]["store"]
    assert store["pending_rows"] == 41  # 40 events and one metric point
    assert "File too large" in store["error"]
    assert str(db) in full["stats"]["problems"]["store"]
    assert full["stats"]["logs_dropped"] == {"queue_full": 0, "export_failed": 0,
                                             "store_failed": 0, "shutdown": 0}
    assert f"telemetry: cannot write the local store {db}" in done.stderr
    # and once the disk has room, flush writes them and the problem clears
    freed = phases["freed"]
    assert freed["flushed"] is True
    assert freed["stats"]["store"]["pending_rows"] == 0
    assert freed["stats"]["problems"] == {}
    assert f"telemetry: the local store {db} takes writes again" in done.stderr
    # every event is in the store exactly once
    reopened = TelemetryStore(db)
    traces = dict(reopened.kql("AppTraces | summarize count() by Message").rows)
    points = reopened.sql('SELECT sum("Sum") FROM "AppMetrics" '
                          "WHERE \"Name\" = 'sync_records_created_total'")
    reopened.close()
    assert traces == {"before.full": 5, "while.full": 40}
    assert points == [(2.0,)]


_BOUNDED_DISK_FULL = _DISK + """
import duckdb
from integration_monitoring import Telemetry, get_logger
from integration_monitoring.store import BufferedWriter, StoreLogExporter, TelemetryStore
from integration_monitoring.telemetry._core import Losses
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
path = sys.argv[1]
store = TelemetryStore(path)
losses = Losses()
writer = BufferedWriter(store, max_rows=1, max_pending=100, losses=losses)
logs = LoggerProvider()
logs.add_log_record_processor(SimpleLogRecordProcessor(StoreLogExporter(writer)))
telemetry = Telemetry(logger_provider=logs, stdout=False, losses=losses)
log = get_logger("worker", telemetry)
log.info("before.full")
disk_full(path)
for n in range(250):
    log.info("while.full", n=n)
try:  # DuckDB gives up on a database whose checkpoint could not be written
    store.sql("CHECKPOINT")
    checkpoint = "written"
except duckdb.Error as error:
    checkpoint = type(error).__name__
report(phase="full", checkpoint=checkpoint, stats=telemetry.stats())
disk_freed()
report(phase="freed", written=writer.flush(), stats=telemetry.stats())
store.close()
"""


def test_a_long_disk_full_keeps_at_most_max_pending_rows_and_counts_each_one_dropped(tmp_path):
    """The writer's memory is bounded: beyond 100 kept rows the oldest go, each counted; a
    database DuckDB gave up on (a failed checkpoint) is reopened when space returns."""
    db = tmp_path / "telemetry.duckdb"
    # when 250 events are logged while the disk is full, a checkpoint fails, space returns
    done = subprocess.run([sys.executable, "-c", _BOUNDED_DISK_FULL, str(db)], cwd=ROOT,
                          env=project_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    phases = _results(done)
    # then 100 rows were kept and exactly 150 counted as dropped by the store's writer
    full = phases["full"]
    assert full["checkpoint"] == "FatalException"
    assert full["stats"]["store"]["pending_rows"] == 100
    assert full["stats"]["logs_dropped"]["store_failed"] == 150
    assert "telemetry: dropping log records (store_failed, 1 so far)" in done.stderr
    # and once space returned, the store reconnected and took the 100 kept rows
    freed = phases["freed"]
    assert freed["written"] == 100
    assert freed["stats"]["store"] == {"path": str(db), "pending_rows": 0,
                                       "failed_writes": full["stats"]["store"]["failed_writes"],
                                       "error": None}
    reopened = TelemetryStore(db)
    kept = reopened.kql('AppTraces | where Message == "while.full" '
                        "| summarize count(), min(toint(Properties.n))").rows
    before = reopened.kql('AppTraces | where Message == "before.full" | count').rows
    reopened.close()
    # the newest 100 (n = 150..249) are stored; 1 + 100 + 150 dropped = all 251 emitted
    assert kept == [(100, 150)]
    assert before == [(1,)]


# -- the local store locked by another process ---------------------------------------------


@pytest.fixture
def held_store(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A store file another process has open (and so locked) until the test ends."""
    db = tmp_path / "telemetry.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\n"
         "from integration_monitoring.store import TelemetryStore\n"
         "store = TelemetryStore(sys.argv[1])\nprint('holding', flush=True)\nsys.stdin.read()",
         str(db)],
        cwd=ROOT, env=project_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True)
    assert holder.stdout.readline().strip() == "holding"
    yield db, holder
    holder.communicate(timeout=10)  # closing stdin lets it exit


def test_opening_a_store_another_process_holds_fails_fast_and_names_file_and_holder(
        held_store):
    """No waiting and no DuckDB jargon: which file, which process, what to do."""
    db, holder = held_store
    started = time.monotonic()
    with pytest.raises(StoreLocked) as raised:
        TelemetryStore(db)
    assert time.monotonic() - started < 10  # DuckDB does not wait for a lock; we do not either
    message = str(raised.value)
    assert f"the local telemetry store {db} is locked by another process" in message
    assert f"PID {holder.pid}" in message
    assert "TELEMETRY_DB" in message


def test_serve_exits_with_a_clear_message_when_another_process_holds_the_store(
        held_store, tmp_path):
    """`serve` on a store another process holds says so and exits, without a traceback."""
    db, holder = held_store
    done = subprocess.run(
        [sys.executable, "-m", "integration_monitoring", "serve", "--no-demo", "--port",
         str(free_port())],
        cwd=ROOT, env=project_env(tmp_path, TELEMETRY_DB=str(db)), capture_output=True,
        text=True, timeout=60)
    assert done.returncode != 0
    assert f"the local telemetry store {db} is locked by another process" in done.stderr
    assert f"PID {holder.pid}" in done.stderr
    assert "Traceback" not in done.stderr
