"""The seed's metrics: one table of names, kinds, units, descriptions and labels."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

JOB_LABELS = ("tenant_id", "integration_id", "adapter_type", "entity", "status")
RECORD_LABELS = ("tenant_id", "integration_id", "adapter_type", "entity")
ADAPTER_LABELS = ("tenant_id", "integration_id", "adapter_type", "entity", "status")
QUEUE_LABELS = ("queue",)
MESSAGE_LABELS = ("queue", "tenant_id", "integration_id", "adapter_type", "entity", "status")

#: Label value that replaces every label of a series beyond the cardinality cap.
OVERFLOW_ATTRIBUTES = {"otel.metric.overflow": "true"}


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # counter | histogram | gauge
    unit: str
    description: str
    labels: tuple[str, ...]
    seed: bool = True


#: Units follow UCUM as OpenTelemetry asks; names already carry their Prometheus unit
#: suffix (`_ms`, `_seconds`), which the Prometheus exposition keeps as is.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("sync_jobs_total", "counter", "{transition}",
               "Sync job state transitions, by status: pending (enqueued), processing, "
               "completed, failed.", JOB_LABELS),
    MetricSpec("sync_jobs_processed_total", "counter", "{job}",
               "Sync jobs that finished processing, completed or failed (status says which).",
               JOB_LABELS),
    MetricSpec("sync_jobs_failed_total", "counter", "{job}",
               "Sync jobs that failed.", JOB_LABELS),
    MetricSpec("sync_records_created_total", "counter", "{record}",
               "Records created in the target by sync jobs.", RECORD_LABELS),
    MetricSpec("sync_records_updated_total", "counter", "{record}",
               "Records updated in the target by sync jobs.", RECORD_LABELS),
    MetricSpec("sync_records_failed_total", "counter", "{record}",
               "Records a sync job could not write (not in the seed; the dashboard's "
               "records failed).", RECORD_LABELS, seed=False),
    MetricSpec("sync_latency_ms", "histogram", "ms",
               "Sync job duration from start to completion or failure, in milliseconds.",
               JOB_LABELS),
    MetricSpec("sync_jobs_by_integration_total", "counter", "{job}",
               "Sync jobs started, by integration and adapter type.", RECORD_LABELS),
    MetricSpec("adapter_requests_total", "counter", "{request}",
               "Adapter API requests, by adapter and status (success, rate_limited, "
               "client_error, server_error, connection_failed).", ADAPTER_LABELS),
    MetricSpec("adapter_request_duration_seconds", "histogram", "s",
               "Adapter API request duration, in seconds.", ADAPTER_LABELS),
    MetricSpec("adapter_rate_limit_hits_total", "counter", "{hit}",
               "Adapter API responses that were rate limited (HTTP 429).", RECORD_LABELS),
    MetricSpec("adapter_connection_failures_total", "counter", "{failure}",
               "Adapter API requests that failed to connect (DNS, refused, TLS, timeout).",
               RECORD_LABELS),
    MetricSpec("service_bus_queue_depth", "gauge", "{message}",
               "Active messages waiting in a Service Bus queue, sampled.", QUEUE_LABELS),
    MetricSpec("service_bus_messages_processed_total", "counter", "{message}",
               "Service Bus messages settled: completed, abandoned or dead-lettered (status "
               "says which).",
               MESSAGE_LABELS),
    MetricSpec("service_bus_messages_failed_total", "counter", "{message}",
               "Service Bus messages whose processing failed: abandoned or dead-lettered.",
               MESSAGE_LABELS),
    MetricSpec("service_bus_dlq_depth", "gauge", "{message}",
               "Messages in a Service Bus queue's dead-letter subqueue, sampled.", QUEUE_LABELS),
    MetricSpec("service_bus_sample_failures_total", "counter", "{failure}",
               "Queue depth samples that failed, by reason (forbidden, not_found, throttled, "
               "timeout, server_error, unreachable, credential, error); not in the seed.",
               ("queue", "reason"), seed=False),
    MetricSpec("alert_relay_rejected_total", "counter", "{request}",
               "Requests the alert relay refused, by reason (the error code: missing_secret, "
               "wrong_secret, relay_not_configured, body_too_large, invalid_body, "
               "invalid_alert, unknown_rule); not in the seed.", ("reason",), seed=False),
)

BY_NAME = {spec.name: spec for spec in METRICS}

#: Histogram bucket boundaries chosen for what each measures (the SDK's default tops out
#: at 10 s, far below a slow sync).
BUCKETS = {
    "sync_latency_ms": (100, 500, 1000, 5000, 10_000, 30_000, 60_000, 120_000, 300_000,
                        600_000, 1_800_000, 3_600_000),
    "adapter_request_duration_seconds": (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                                         60),
}


class Instruments:
    """The seed's instruments on one meter, each behind a per-metric cardinality cap."""

    def __init__(self, meter: Any, cardinality_limit: int = 2000) -> None:
        self.cardinality_limit = cardinality_limit
        self.overflowed: dict[str, int] = {}
        self._series: dict[str, set[tuple[tuple[str, str], ...]]] = {}
        self._lock = threading.Lock()
        self._record: dict[str, Any] = {}
        for spec in METRICS:
            if spec.kind == "counter":
                instrument = meter.create_counter(spec.name, spec.unit, spec.description)
                self._record[spec.name] = instrument.add
            elif spec.kind == "histogram":
                instrument = meter.create_histogram(
                    spec.name, spec.unit, spec.description,
                    explicit_bucket_boundaries_advisory=BUCKETS.get(spec.name),
                )
                self._record[spec.name] = instrument.record
            else:
                instrument = meter.create_gauge(spec.name, spec.unit, spec.description)
                self._record[spec.name] = instrument.set
            self._series[spec.name] = set()

    def record(self, name: str, value: float, labels: dict[str, str]) -> None:
        """Add to a counter, record in a histogram or set a gauge, within the cap."""
        series = self._series[name]
        key = tuple(labels.items())
        if key not in series:
            with self._lock:
                if len(series) >= self.cardinality_limit:
                    self.overflowed[name] = self.overflowed.get(name, 0) + 1
                    labels = OVERFLOW_ATTRIBUTES
                else:
                    series.add(key)
        self._record[name](value, labels)
