"""One entry point that wires OpenTelemetry to Application Insights or to the local store."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from ._core import Telemetry
from ._current import current, use
from ._stdlib import SeedLogHandler

#: configure_azure_monitor attaches its own logging handler to this logger, where nobody
#: logs: stdlib records reach Azure through SeedLogHandler instead, once, in seed shape.
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
        if connection_string:
            configured = _azure(connection_string, resource, reader, azure_options)
        else:
            configured = _local(db_path, resource, reader, export_interval_ms)
        configured.telemetry = Telemetry(
            stdout=_flag("TELEMETRY_STDOUT", True) if stdout is None else stdout,
            cardinality_limit=cardinality_limit or _int("TELEMETRY_CARDINALITY_LIMIT", 2000),
        )
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
           options: dict[str, Any]) -> Configured:
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(
        connection_string=connection_string,
        resource=resource,
        logger_name=AZURE_HANDLER_LOGGER,
        metric_readers=[prometheus] if prometheus else [],
        **options,
    )
    return Configured(mode="azure", telemetry=None, prometheus=prometheus)  # type: ignore[arg-type]


def _local(db_path: str | None, resource: Any, prometheus: Any,
           export_interval_ms: int | None) -> Configured:
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from ..store import RetentionJob, StoreLogExporter, StoreMetricExporter, open_store

    store = open_store(db_path)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(
        StoreLogExporter(store), schedule_delay_millis=1000, max_queue_size=65_536,
        max_export_batch_size=4096,
    ))
    interval = export_interval_ms or _int("TELEMETRY_EXPORT_INTERVAL_MS", 10_000)
    readers = [PeriodicExportingMetricReader(StoreMetricExporter(store),
                                             export_interval_millis=interval)]
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
                      store=store, retention=retention)


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
    if config.store is not None:
        config.store.close()  # DuckDB must not be mid-write when the interpreter ends
