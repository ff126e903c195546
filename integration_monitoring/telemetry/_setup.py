"""One entry point that wires OpenTelemetry to Application Insights or to the local store.

Both destinations get the same log and metric pipelines: a batch processor and a periodic
metric reader from the OpenTelemetry SDK, wrapped so that whatever they would lose (a full
queue, a failed export, records left at shutdown) is counted in `Telemetry.stats()`.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from ._core import Losses, Telemetry
from ._current import current, use
from ._stdlib import SeedLogHandler

#: Were the distro to set up its logging pipeline after all, its handler would go on this
#: logger, where nobody logs: stdlib records reach Azure through SeedLogHandler, once.
AZURE_HANDLER_LOGGER = "integration_monitoring.internal.azure"


@dataclass
class Configured:
    """What `configure_telemetry` set up."""

    mode: str  # "azure" or "local"
    telemetry: Telemetry
    prometheus: Any
    store: Any = None
    handler: logging.Handler | None = None
    retention: Any = None
    writer: Any = None  # the local store's BufferedWriter
    losses: Losses = field(default_factory=Losses)
    #: What `Telemetry.flush` also asks after the providers (metric export, store writer).
    flushers: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


_configured: Configured | None = None
_lock = threading.Lock()


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() not in {"0", "false", "no", "off"}


def _int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        return default


# -- pipelines that count what they lose -------------------------------------------------------


class CountedBatchLogRecordProcessor(LogRecordProcessor):
    """The SDK's BatchLogRecordProcessor, with every record it would lose counted.

    The SDK's queue drops its oldest record without a word when it is full, forgets a batch
    whose export failed, and leaves what is still queued when shutdown gives up. Here the
    queue's bound is enforced in front of it: a record that would overflow is refused and
    counted (`queue_full`), so the SDK's queue, as large, never drops one; the exporter is
    wrapped so a batch it fails counts as `export_failed`; records still queued when the
    processor shuts down, or emitted afterwards, count as `shutdown`. Every count goes to
    `losses.logs` and so to `Telemetry.stats()["logs_dropped"]`. Queue sizes default to the
    SDK's (`OTEL_BLRP_*`, 2048 and 512).
    """

    def __init__(self, exporter: LogRecordExporter, losses: Losses, *,
                 max_queue_size: int | None = None, max_export_batch_size: int | None = None,
                 schedule_delay_millis: float | None = None,
                 export_timeout_millis: float | None = None) -> None:
        self.exporter = exporter
        self.losses = losses
        self.max_queue_size = max_queue_size or _positive("OTEL_BLRP_MAX_QUEUE_SIZE", 2048)
        batch = max_export_batch_size or _positive("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", 512)
        self._lock = threading.Lock()
        self._queued = 0  # given to the SDK's queue, not yet to the exporter
        self._closed = False
        self._shutdown_counted = False
        self._failed_batches = 0
        self._batches = BatchLogRecordProcessor(
            _CountedLogExporter(exporter, self), schedule_delay_millis=schedule_delay_millis,
            max_export_batch_size=min(batch, self.max_queue_size),
            export_timeout_millis=export_timeout_millis, max_queue_size=self.max_queue_size)
        if hasattr(os, "register_at_fork"):  # a child starts with the SDK's queue emptied
            this = weakref.ref(self)

            def forked() -> None:
                processor = this()
                if processor is not None:
                    processor._forked()

            os.register_at_fork(after_in_child=forked)

    @property
    def queued(self) -> int:
        """Records waiting for export."""
        return self._queued

    def on_emit(self, log_record: Any) -> None:
        with self._lock:
            if self._closed:
                refused = "shutdown"
            elif self._queued >= self.max_queue_size:
                refused = "queue_full"
            else:
                refused = None
                self._queued += 1
        if refused is not None:
            self.losses.logs_lost(refused, 1, f"the export queue holds {self.max_queue_size}"
                                  if refused == "queue_full" else "emitted after shutdown")
            return
        try:
            self._batches.on_emit(log_record)
        except Exception:
            with self._lock:
                self._queued -= 1
            raise  # Telemetry counts it (otel_failed)

    def _handed(self, count: int) -> None:
        """The SDK gave `count` queued records to the exporter."""
        with self._lock:
            self._queued -= count
            late = self._shutdown_counted
        if late:  # counted as lost at shutdown, but exported after all
            self.losses.logs_recovered("shutdown", count)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export what is queued; False if a batch failed meanwhile (it was lost)."""
        failed = self._failed_batches
        return self._batches.force_flush(timeout_millis) and self._failed_batches == failed

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
        try:
            self._batches.shutdown()
        finally:
            with self._lock:
                left, self._shutdown_counted = self._queued, True
            self.losses.logs_lost("shutdown", left, "still queued when the pipeline stopped")

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self._queued = 0


class _CountedLogExporter(LogRecordExporter):
    """What the SDK's batch processor exports through: counts failed batches."""

    def __init__(self, exporter: LogRecordExporter,
                 processor: CountedBatchLogRecordProcessor) -> None:
        self.exporter = exporter
        self.processor = processor

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        count = len(batch)
        self.processor._handed(count)
        name = type(self.exporter).__name__
        try:
            result = self.exporter.export(batch)
            detail = f"{name} reported a failure"
        except Exception as error:
            result = LogRecordExportResult.FAILURE
            detail = f"{name} raised {type(error).__name__}: {error}"
        losses = self.processor.losses
        if result != LogRecordExportResult.SUCCESS:
            self.processor._failed_batches += 1  # only the SDK's export lock holder gets here
            losses.logs_lost("export_failed", count, detail)
            losses.problem("log_export", f"log export failing: {detail}")
        else:
            losses.resolved("log_export", f"log export works again ({name})")
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.exporter.shutdown()


class CountedMetricExporter(MetricExporter):
    """A metric exporter whose failed exports are counted, with the data points they lost
    (`metric_exports_failed`, `metric_points_dropped["export_failed"]` in the stats)."""

    def __init__(self, exporter: MetricExporter, losses: Losses) -> None:
        # The reader asks its exporter for these; the wrapped exporter's answers stand.
        super().__init__(preferred_temporality=exporter._preferred_temporality,
                         preferred_aggregation=exporter._preferred_aggregation)
        self.exporter = exporter
        self.losses = losses
        self._last_failed = False

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        name = type(self.exporter).__name__
        try:
            result = self.exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            detail = f"{name} reported a failure"
        except Exception as error:
            result = MetricExportResult.FAILURE
            detail = f"{name} raised {type(error).__name__}: {error}"
        self._last_failed = result != MetricExportResult.SUCCESS
        if self._last_failed:
            self.losses.metric_export_failed(_points(metrics_data), detail)
            self.losses.problem("metric_export", f"metric export failing: {detail}")
        else:
            self.losses.resolved("metric_export", f"metric export works again ({name})")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.exporter.force_flush(timeout_millis=timeout_millis)

    def last_export_ok(self, timeout_millis: int = 0) -> bool:
        """False if the latest export failed. The SDK's reader ignores its exporter's
        answers, so `Telemetry.flush` asks this after the meter provider's flush."""
        return not self._last_failed

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)


def _points(metrics_data: MetricsData | None) -> int:
    try:
        return sum(len(metric.data.data_points)
                   for resource_metrics in metrics_data.resource_metrics
                   for scope_metrics in resource_metrics.scope_metrics
                   for metric in scope_metrics.metrics)
    except (AttributeError, TypeError):  # None, or not the SDK's shape
        return 0


def _positive(name: str, default: int) -> int:
    value = _int(name, default)
    return value if value > 0 else default


def configure_telemetry(
    service_name: str | None = None,
    *,
    connection_string: str | None = None,
    db_path: str | None = None,
    stdout: bool | None = None,
    capture_stdlib: bool = True,
    prometheus: bool | None = None,
    export_interval_ms: int | None = None,
    cardinality_limit: int | None = None,
    **azure_options: Any,
) -> Telemetry:
    """Set up telemetry for this process once and return it.

    With `APPLICATIONINSIGHTS_CONNECTION_STRING` (or `connection_string`) events and metrics
    go to Application Insights through `azure-monitor-opentelemetry`; otherwise to the
    local DuckDB store at `TELEMETRY_DB`. With `prometheus` (or `TELEMETRY_PROMETHEUS=true`)
    the process also keeps its metrics for a Prometheus scrape of `/metrics`; it is off by
    default because each extra reader adds to the cost of every measurement. Stdlib
    `logging` records become seed events too. Later calls return the first configuration.
    """
    global _configured
    with _lock:
        if _configured is not None:
            return _configured.telemetry
        from opentelemetry.sdk.resources import Resource

        from ._prometheus import SeedPrometheusReader

        attributes = {"service.name": service_name} if service_name else {}
        resource = Resource.create(attributes)
        if prometheus is None:
            prometheus = _flag("TELEMETRY_PROMETHEUS", False)
        reader = SeedPrometheusReader() if prometheus else None
        # Exemplars would be sampled on every measurement inside a span; nothing reads them.
        os.environ.setdefault("OTEL_METRICS_EXEMPLAR_FILTER", "always_off")
        connection_string = connection_string or os.environ.get(
            "APPLICATIONINSIGHTS_CONNECTION_STRING")
        losses = Losses()
        if connection_string:
            configured = _azure(connection_string, resource, reader, azure_options, losses)
        else:
            configured = _local(db_path, resource, reader, export_interval_ms, losses)
        configured.telemetry = Telemetry(
            stdout=_flag("TELEMETRY_STDOUT", True) if stdout is None else stdout,
            cardinality_limit=cardinality_limit or _int("TELEMETRY_CARDINALITY_LIMIT", 2000),
            losses=losses,
        )
        for flusher in configured.flushers:
            configured.telemetry.add_flusher(flusher)
        use(configured.telemetry)
        if capture_stdlib:
            configured.handler = SeedLogHandler()
            root = logging.getLogger()
            root.addHandler(configured.handler)
            if root.level > logging.INFO or root.level == logging.NOTSET:
                root.setLevel(logging.INFO)
        _configured = configured
        atexit.register(shutdown_telemetry)
        return configured.telemetry


def _azure(connection_string: str, resource: Any, prometheus: Any,
           options: dict[str, Any], losses: Losses) -> Configured:
    """Application Insights: the distro sets up tracing, live metrics and instrumentations;
    the log and metric pipelines are built here, around the distro's own exporters, so
    that what they lose is counted.

    With the exporters' offline storage on (their default), a batch whose send failed with
    a retryable error is also written to disk and sent again later, so `export_failed`
    counts what failed to go out then, some of which may still arrive.
    """
    from azure.monitor.opentelemetry import configure_azure_monitor
    from azure.monitor.opentelemetry.exporter import (
        AzureMonitorLogExporter,
        AzureMonitorMetricExporter,
    )
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    options = dict(options)
    log_processors = list(options.pop("log_record_processors", None) or [])
    readers = list(options.pop("metric_readers", None) or [])
    views = list(options.pop("views", None) or [])
    live_metrics = options.get("enable_live_metrics", True)
    performance_counters = options.get("enable_performance_counters", True)
    export_logs, export_metrics = (os.environ.get(name, "").strip().lower() != "none"
                                   for name in ("OTEL_LOGS_EXPORTER", "OTEL_METRICS_EXPORTER"))
    # The distro reads its disable_logging/disable_metrics only from these variables.
    with _environment(OTEL_LOGS_EXPORTER="none", OTEL_METRICS_EXPORTER="none"):
        configure_azure_monitor(connection_string=connection_string, resource=resource,
                                logger_name=AZURE_HANDLER_LOGGER, **options)
    # The distro's resource has its detectors' attributes (App Service, Functions, VM).
    resource = getattr(trace.get_tracer_provider(), "resource", None) or Resource.create(
        resource.attributes)
    exporter_options = {**options, "connection_string": connection_string}

    logger_provider = LoggerProvider(resource=resource)
    for processor in [*log_processors,
                      *_azure_log_features(live_metrics, performance_counters, losses)]:
        logger_provider.add_log_record_processor(processor)
    if export_logs:
        logger_provider.add_log_record_processor(CountedBatchLogRecordProcessor(
            AzureMonitorLogExporter(**exporter_options), losses))
    flushers = []
    if export_metrics:
        exporter = CountedMetricExporter(AzureMonitorMetricExporter(**exporter_options), losses)
        readers.append(PeriodicExportingMetricReader(exporter))
        flushers.append(exporter.last_export_ok)
    if prometheus:
        readers.append(prometheus)
    meter_provider = MeterProvider(metric_readers=readers, resource=resource, views=views)
    if performance_counters:
        _enable_performance_counters(meter_provider)
    _logs.set_logger_provider(logger_provider)
    metrics.set_meter_provider(meter_provider)
    return Configured(mode="azure", telemetry=None, prometheus=prometheus,  # type: ignore[arg-type]
                      losses=losses, flushers=flushers)


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _azure_log_features(live_metrics: bool, performance_counters: bool,
                        losses: Losses) -> list[Any]:
    """The log processors the distro adds for live metrics and performance counters."""
    processors: list[Any] = []
    try:
        if live_metrics:
            from azure.monitor.opentelemetry.exporter._quickpulse._processor import (
                _QuickpulseLogRecordProcessor,
            )

            processors.append(_QuickpulseLogRecordProcessor())
        if performance_counters:
            from azure.monitor.opentelemetry.exporter._performance_counters._processor import (
                _PerformanceCountersLogRecordProcessor,
            )

            processors.append(_PerformanceCountersLogRecordProcessor())
    except ImportError as error:  # moved in a newer exporter version
        losses.problem("azure", f"live metrics and performance counters cannot see log "
                                f"records: {error}")
    return processors


def _enable_performance_counters(meter_provider: Any) -> None:
    try:
        from azure.monitor.opentelemetry.exporter._performance_counters import (
            enable_performance_counters,
        )
    except ImportError:
        return
    enable_performance_counters(meter_provider=meter_provider)


def _local(db_path: str | None, resource: Any, prometheus: Any,
           export_interval_ms: int | None, losses: Losses) -> Configured:
    """The local DuckDB store, written through a BufferedWriter that keeps rows while the
    store refuses writes (a full disk) and writes them when it takes them again."""
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from ..store import (
        BufferedWriter,
        RetentionJob,
        StoreLogExporter,
        StoreMetricExporter,
        open_store,
    )

    store = open_store(db_path)  # StoreLocked when another process holds the file
    writer = BufferedWriter(store, max_rows=1, losses=losses)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(CountedBatchLogRecordProcessor(
        StoreLogExporter(writer), losses, schedule_delay_millis=1000, max_queue_size=65_536,
        max_export_batch_size=4096,
    ))
    interval = export_interval_ms or _int("TELEMETRY_EXPORT_INTERVAL_MS", 10_000)
    exporter = CountedMetricExporter(StoreMetricExporter(writer), losses)
    readers = [PeriodicExportingMetricReader(exporter, export_interval_millis=interval)]
    if prometheus:
        readers.append(prometheus)
    meter_provider = MeterProvider(metric_readers=readers, resource=resource,
                                   exemplar_filter=AlwaysOffExemplarFilter())
    _logs.set_logger_provider(logger_provider)
    metrics.set_meter_provider(meter_provider)
    trace.set_tracer_provider(TracerProvider(resource=resource))
    retention = RetentionJob(store)
    retention.start()
    return Configured(mode="local", telemetry=None, prometheus=prometheus,  # type: ignore[arg-type]
                      store=store, retention=retention, writer=writer, losses=losses,
                      flushers=[exporter.last_export_ok, writer.done])


def configured() -> Configured | None:
    """The active configuration, or None before `configure_telemetry`."""
    return _configured


def flush(timeout_millis: int = 10_000) -> bool:
    """Export everything buffered; call at the end of a short-lived invocation."""
    return current().flush(timeout_millis)


def shutdown_telemetry() -> None:
    """Flush and stop exporters and the store's threads; runs at process exit."""
    global _configured
    with _lock:
        config, _configured = _configured, None
    if config is None:
        return
    config.telemetry.flush()
    if config.retention is not None:
        config.retention.stop()
    if config.handler is not None:
        logging.getLogger().removeHandler(config.handler)
    for provider in (config.telemetry.logger_provider, config.telemetry.meter_provider,
                     config.telemetry.tracer_provider):
        stop = getattr(provider, "shutdown", None)
        if stop is not None:
            try:
                stop()
            except Exception:
                pass
    if config.writer is not None:
        config.writer.close()  # what the store still refuses is counted as lost
    if config.store is not None:
        config.store.close()  # DuckDB must not be mid-write when the interpreter ends
