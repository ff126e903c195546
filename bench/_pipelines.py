"""Real OpenTelemetry pipelines under a `Telemetry`, and the plumbing the benchmark needs."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from integration_monitoring import Telemetry
from integration_monitoring.store import StoreLogExporter, StoreMetricExporter, TelemetryStore
from integration_monitoring.telemetry import CountedBatchLogRecordProcessor, Losses

# Renamed: this module's own `local_pipeline` is part 2's in-memory pipeline.
from integration_monitoring.telemetry import local_pipeline as local_store_pipeline

#: The Azure exporter would otherwise phone Microsoft (statsbeat, OneSettings) on its own.
AZURE_QUIET_ENV = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
}
ZERO_IKEY = "00000000-0000-0000-0000-000000000000"


# -- SDK and exporter diagnostics ---------------------------------------------------------


class MessageCounter(logging.Handler):
    """Counts SDK/exporter log records by message template instead of printing them.

    Installed on the `opentelemetry` and `azure` loggers (not propagated), so "Queue full,
    dropping Log." and "Retrying due to server request error" become numbers in the report
    (the SDK de-duplicates its own warnings per 20 s, so these count occurrences, not items).
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[str(record.msg)] += 1

    def queue_full(self) -> int:
        return sum(n for msg, n in self.counts.items() if msg.startswith("Queue full"))

    def install(self, names: Sequence[str] = ("opentelemetry", "azure")) -> None:
        for name in names:
            logger = logging.getLogger(name)
            logger.addHandler(self)
            logger.propagate = False


class CountingLogExporter(LogRecordExporter):
    """Delegates to `inner` and counts export results (adds one call per batch)."""

    def __init__(self, inner: LogRecordExporter) -> None:
        self.inner = inner
        self.ok = self.failed = self.records = 0

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        self.records += len(batch)
        result = self.inner.export(batch)
        if result == LogRecordExportResult.SUCCESS:
            self.ok += 1
        else:
            self.failed += 1
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


class CountingMetricExporter(MetricExporter):
    """Delegates to `inner` (or accepts and drops, when None) and counts export results."""

    def __init__(self, inner: MetricExporter | None = None) -> None:
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self.inner = inner
        self.ok = self.failed = 0

    def export(
        self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if self.inner is None:
            result = MetricExportResult.SUCCESS
        else:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        if result == MetricExportResult.SUCCESS:
            self.ok += 1
        else:
            self.failed += 1
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True if self.inner is None else self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self.inner is not None:
            self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def queue_length(processor: Any) -> int | None:
    """Records waiting in a batch processor (ours counts them; the SDK's keeps them in its
    internals, None if they moved)."""
    if isinstance(processor, CountedBatchLogRecordProcessor):
        return processor.queued
    queue = getattr(getattr(processor, "_batch_processor", None), "_queue", None)
    return None if queue is None else len(queue)


# -- part 1: the production pipeline of `configure_telemetry`'s local mode ----------------


@dataclass
class StorePipeline:
    """Batch log processor -> StoreLogExporter, periodic reader -> StoreMetricExporter."""

    telemetry: Telemetry
    quiet: Telemetry  # the same providers, stdout lines off
    store: TelemetryStore
    log_exporter: StoreLogExporter
    metric_exporter: StoreMetricExporter
    processor: CountedBatchLogRecordProcessor

    def flush(self) -> bool:
        return self.telemetry.flush(timeout_millis=10_000)

    def rows(self) -> dict[str, int]:
        return {
            table: self.store.sql(f'SELECT count(*) FROM "{table}"')[0][0]
            for table in ("AppTraces", "AppMetrics")
        }

    def close(self) -> None:
        self.flush()
        for provider in (
            self.telemetry.logger_provider,
            self.telemetry.meter_provider,
            self.telemetry.tracer_provider,
        ):
            with contextlib.suppress(Exception):
                provider.shutdown()
        self.store.close()


def store_pipeline(db_path: str, sink: IO[str]) -> StorePipeline:
    """The pipeline of `configure_telemetry`'s local mode, built by the same
    `integration_monitoring.telemetry.local_pipeline`, over a TelemetryStore on `db_path`."""
    resource = Resource.create({"service.name": "bench"})
    store = TelemetryStore(db_path)
    losses = Losses()
    pipeline = local_store_pipeline(store, losses, resource)
    providers = pipeline.providers()
    return StorePipeline(
        telemetry=Telemetry(**providers, stream=sink, losses=losses),
        quiet=Telemetry(**providers, stdout=False, losses=losses),
        store=store,
        log_exporter=pipeline.log_exporter,
        metric_exporter=pipeline.metric_exporter,
        processor=pipeline.processor,
    )


# -- part 2: exporters behind the batch processor, healthy or failing ---------------------


@dataclass
class ExportPipeline:
    """A Telemetry whose exporters run on the SDK's background threads, with counters."""

    name: str
    telemetry: Telemetry
    log_exporter: CountingLogExporter
    metric_exporter: CountingMetricExporter
    processor: CountedBatchLogRecordProcessor
    on_drain: Any = None
    #: One entry per recorded drain: what happened in the loop before it, and the flush.
    loops: list[dict[str, Any]] = field(default_factory=list)
    _mark: dict[str, int] = field(default_factory=dict)

    def _counts(self) -> dict[str, int]:
        return {
            "log_exports_ok": self.log_exporter.ok,
            "log_exports_failed": self.log_exporter.failed,
            "log_records_exported": self.log_exporter.records,
            "metric_exports_ok": self.metric_exporter.ok,
            "metric_exports_failed": self.metric_exporter.failed,
        }

    def drain(self, record: bool = True) -> None:
        """Flush (timed) what the last loop left queued; count what happened in that loop.

        Log records the loop emitted minus those exported by the end of this flush are the
        ones the batch processor dropped because its queue was full (the SDK logs that
        only once per 20 s, so its warnings cannot be counted instead).
        """
        before = self._counts()
        backlog = queue_length(self.processor)
        start = time.perf_counter_ns()
        ok = self.telemetry.flush(timeout_millis=2000)
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        after = self._counts()
        if record:
            mark = self._mark or dict.fromkeys(before, 0)
            loop = {f"in_loop_{k}": before[k] - mark[k] for k in before}
            loop.update(
                flush_ms=elapsed_ms,
                flush_returned=bool(ok),
                backlog_at_flush=-1 if backlog is None else backlog,
                exported=after["log_records_exported"] - mark["log_records_exported"],
            )
            self.loops.append(loop)
        if self.on_drain is not None:
            self.on_drain()
        self._mark = after

    def reset(self) -> None:
        self.drain(record=False)

    def close(self) -> None:
        for provider in (
            self.telemetry.logger_provider,
            self.telemetry.meter_provider,
            self.telemetry.tracer_provider,
        ):
            with contextlib.suppress(Exception):
                provider.shutdown()


def _export_pipeline(
    name: str,
    log_exporter: CountingLogExporter,
    metric_exporter: CountingMetricExporter,
    sink: IO[str],
    schedule_delay_ms: int,
    metric_interval_ms: int,
) -> ExportPipeline:
    # Queue and batch sizes stay at the SDK defaults (2048 / 512), as configure_azure_monitor
    # leaves them; only the delays are short so exports happen during every timed loop.
    losses = Losses(stream=sink)  # the failures here are the point: keep stderr readable
    processor = CountedBatchLogRecordProcessor(
        log_exporter, losses, schedule_delay_millis=schedule_delay_ms
    )
    logger_provider = LoggerProvider(resource=Resource.create({"service.name": "bench"}))
    logger_provider.add_log_record_processor(processor)
    meter_provider = MeterProvider(
        metric_readers=[
            PeriodicExportingMetricReader(
                metric_exporter, export_interval_millis=metric_interval_ms
            )
        ]
    )
    telemetry = Telemetry(
        logger_provider=logger_provider,
        meter_provider=meter_provider,
        tracer_provider=TracerProvider(),
        stream=sink,
        losses=losses,
    )
    return ExportPipeline(name, telemetry, log_exporter, metric_exporter, processor)


def local_pipeline(
    sink: IO[str], schedule_delay_ms: int, metric_interval_ms: int
) -> ExportPipeline:
    """Healthy and local: the SDK's in-memory log exporter, a metric exporter that accepts."""
    memory = InMemoryLogRecordExporter()
    pipeline = _export_pipeline(
        "local in-memory (healthy)",
        CountingLogExporter(memory),
        CountingMetricExporter(None),
        sink,
        schedule_delay_ms,
        metric_interval_ms,
    )
    pipeline.on_drain = memory.clear
    return pipeline


def azure_pipeline(
    name: str, endpoint: str, sink: IO[str], schedule_delay_ms: int, metric_interval_ms: int
) -> ExportPipeline:
    """The Azure Monitor log and metric exporters, offline storage off, at `endpoint`."""
    for key, value in AZURE_QUIET_ENV.items():
        os.environ.setdefault(key, value)
    from azure.monitor.opentelemetry.exporter import (
        AzureMonitorLogExporter,
        AzureMonitorMetricExporter,
    )

    connection_string = f"InstrumentationKey={ZERO_IKEY};IngestionEndpoint={endpoint}"
    log_exporter = AzureMonitorLogExporter(
        connection_string=connection_string, disable_offline_storage=True
    )
    metric_exporter = AzureMonitorMetricExporter(
        connection_string=connection_string, disable_offline_storage=True
    )
    return _export_pipeline(
        name,
        CountingLogExporter(log_exporter),
        CountingMetricExporter(metric_exporter),
        sink,
        schedule_delay_ms,
        metric_interval_ms,
    )


def closed_port() -> int:
    """A local TCP port nothing listens on: bound, read and closed again."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# A stand-in for the ingestion endpoint that accepts everything, in its own process so it
# does not compete for this process's GIL.
_INGESTION_SERVER = r"""
import http.server, json, os, sys, threading
# Exit when the parent goes away (its end of our stdin closes), however it ends.
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"itemsReceived": 1, "itemsAccepted": 1, "errors": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class IngestionServer:
    """A local HTTP endpoint answering every track request with 200 (a healthy Azure)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _INGESTION_SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError("the stand-in ingestion endpoint did not start")
        self.endpoint = f"http://127.0.0.1:{int(line)}/"

    def stop(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def hanging_endpoint() -> Iterator[str]:
    """An https endpoint that completes the TCP handshake and then never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)  # the kernel accepts connections; nobody reads them
        yield f"https://127.0.0.1:{sock.getsockname()[1]}/"
