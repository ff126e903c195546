"""Integration monitoring: structured logs and metrics for integration adapters and sync services.

    from integration_monitoring import configure_telemetry, get_logger, sync_job

    configure_telemetry("sync-worker")
    log = get_logger("salesforce-adapter")
    with sync_job(tenant_id="tenant-123", integration_id="salesforce-connection-1",
                  adapter_type="salesforce", entity="contact") as job:
        job.records(created=10, updated=3)
"""

from .telemetry import (
    METRICS,
    REDACTED,
    AdapterCall,
    MetricSpec,
    SeedLogHandler,
    ServiceLogger,
    SyncJob,
    Telemetry,
    adapter_request,
    bind,
    configure_telemetry,
    connection_status_changed,
    flush,
    get_logger,
    integration_status_changed,
    job_enqueued,
    message_failed,
    message_processed,
    record_queue_depth,
    shutdown_telemetry,
    sync_job,
)

__version__ = "0.1.0"

__all__ = [
    "METRICS",
    "REDACTED",
    "AdapterCall",
    "MetricSpec",
    "SeedLogHandler",
    "ServiceLogger",
    "SyncJob",
    "Telemetry",
    "__version__",
    "adapter_request",
    "bind",
    "configure_telemetry",
    "connection_status_changed",
    "flush",
    "get_logger",
    "integration_status_changed",
    "job_enqueued",
    "message_failed",
    "message_processed",
    "record_queue_depth",
    "shutdown_telemetry",
    "sync_job",
]
