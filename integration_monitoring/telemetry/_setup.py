"""One entry point that sets up telemetry for the process, to Application Insights or locally.

With a connection string the pipeline is Azure's (`_azure`), else the local DuckDB store's
(`_local`); both count what they lose in `Telemetry.stats()`. This module chooses, keeps the
one configuration, and takes it down at exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from ._core import Losses, Telemetry
from ._current import current, use
from ._env import _flag, _int
from ._stdlib import SeedLogHandler


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
    """Application Insights, through the distro (imported only in this mode)."""
    from ._azure import azure_pipeline

    flushers = azure_pipeline(connection_string, resource, prometheus, options, losses)
    return Configured(mode="azure", telemetry=None, prometheus=prometheus,  # type: ignore[arg-type]
                      losses=losses, flushers=flushers)


def _local(db_path: str | None, resource: Any, prometheus: Any,
           export_interval_ms: int | None, losses: Losses) -> Configured:
    """The local DuckDB store, written through a BufferedWriter that keeps rows while the
    store refuses writes (a full disk) and writes them when it takes them again."""
    from opentelemetry import _logs, metrics, trace

    from ..store import RetentionJob, open_store
    from ._local import LIVE, local_pipeline

    store = open_store(db_path)  # StoreLocked when another process holds the file
    interval = export_interval_ms or _int("TELEMETRY_EXPORT_INTERVAL_MS",
                                          int(LIVE.export_interval_ms))
    pipeline = local_pipeline(store, losses, resource, export_interval_ms=interval,
                              readers=[prometheus] if prometheus else [])
    _logs.set_logger_provider(pipeline.logger_provider)
    metrics.set_meter_provider(pipeline.meter_provider)
    trace.set_tracer_provider(pipeline.tracer_provider)
    retention = RetentionJob(store)
    retention.start()
    return Configured(mode="local", telemetry=None, prometheus=prometheus,  # type: ignore[arg-type]
                      store=store, retention=retention, writer=pipeline.writer, losses=losses,
                      flushers=pipeline.flushers)


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
