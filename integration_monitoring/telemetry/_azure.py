"""The Application Insights pipeline: the only module here that imports `azure`.

The distro (`azure-monitor-opentelemetry`) sets up tracing, live metrics and the
instrumentations; the log and metric pipelines are built here, around the distro's own
exporters, so that what they lose is counted like the local pipeline's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ._core import Losses
from ._counted import CountedBatchLogRecordProcessor, CountedMetricExporter

#: Were the distro to set up its logging pipeline after all, its handler would go on this
#: logger, where nobody logs: stdlib records reach Azure through SeedLogHandler, once.
AZURE_HANDLER_LOGGER = "integration_monitoring.internal.azure"


def azure_pipeline(connection_string: str, resource: Any, prometheus: Any,
                   options: dict[str, Any], losses: Losses) -> list[Any]:
    """Configure the distro, install the counted log and metric pipelines as the global
    providers, and return what `Telemetry.flush` should also ask (the metric export).

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
    return flushers


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
