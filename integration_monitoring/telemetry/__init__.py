"""Structured events in the seed's schema and the seed's metrics, over OpenTelemetry."""

from ._context import bind, bound
from ._core import Losses, Telemetry
from ._counted import CountedBatchLogRecordProcessor, CountedMetricExporter
from ._current import current, use
from ._instrument import (
    AdapterCall,
    SyncJob,
    adapter_request,
    connection_status_changed,
    integration_status_changed,
    is_connection_error,
    job_enqueued,
    message_failed,
    message_processed,
    record_queue_depth,
    sync_job,
)
from ._local import LocalPipeline, local_pipeline
from ._logger import ServiceLogger, get_logger
from ._metrics import METRICS, MetricSpec
from ._setup import configure_telemetry, configured, flush, shutdown_telemetry
from ._stdlib import SeedLogHandler
from ._values import REDACTED

__all__ = [
    "METRICS",
    "REDACTED",
    "AdapterCall",
    "CountedBatchLogRecordProcessor",
    "CountedMetricExporter",
    "LocalPipeline",
    "Losses",
    "MetricSpec",
    "SeedLogHandler",
    "ServiceLogger",
    "SyncJob",
    "Telemetry",
    "adapter_request",
    "bind",
    "bound",
    "configure_telemetry",
    "configured",
    "connection_status_changed",
    "current",
    "flush",
    "get_logger",
    "integration_status_changed",
    "is_connection_error",
    "job_enqueued",
    "local_pipeline",
    "message_failed",
    "message_processed",
    "record_queue_depth",
    "shutdown_telemetry",
    "sync_job",
    "use",
]
